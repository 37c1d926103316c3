//! The lock order (`src/store/mod.rs`): API calls and workers touching the
//! same environments at once never deadlock, so ordinary traffic never sees
//! a 500, and everything converges afterwards.

use std::collections::BTreeMap;

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::support::helpers::captured_logs;

const CLIENTS: u64 = 6;
const OPS_PER_CLIENT: usize = 50;
const IDS: [&str; 4] = ["race-0", "race-1", "race-2", "race-3"];
const WAITS: [&str; 4] = ["?wait=0", "?wait=0", "?wait=1", ""];

/// One client's run: `OPS_PER_CLIENT` random PUT / DELETE / recreate calls
/// over `IDS`. Returns (operation, status, body) for each.
async fn client(app: &TestApp, seed: u64) -> Vec<(&'static str, StatusCode, Value)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut answers = Vec::with_capacity(OPS_PER_CLIENT);
    for _ in 0..OPS_PER_CLIENT {
        let id = IDS[rng.gen_range(0..IDS.len())];
        let wait = WAITS[rng.gen_range(0..WAITS.len())];
        let (op, (status, body)) = match rng.gen_range(0..5) {
            0 | 1 => ("put", put_env(app, "acme", id, wait, None).await),
            2 | 3 => ("delete", delete_env(app, "acme", id, wait).await),
            _ => (
                "recreate",
                app.api(
                    Method::POST,
                    &format!("/tenants/acme/environments/{id}/recreate{wait}"),
                    None,
                )
                .await,
            ),
        };
        answers.push((op, status, body));
    }
    answers
}

/// Jobs still open and generations not settled.
async fn outstanding(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "select (select count(*) from jobs where state in ('queued', 'running')),
                (select count(*) from environments
                  where not ((desired = 'present' and status in ('ready', 'failed'))
                          or (desired = 'absent' and status in ('deleted', 'failed'))))",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn concurrent_puts_deletes_and_recreates_on_a_few_ids_never_answer_5xx_and_converge() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    let _clock = ClockDriver::start(vec![app.clock.clone()]);
    ready_tenant(&app, "acme").await;
    let logs_before = captured_logs().len();

    let runs = join_all((0..CLIENTS).map(|seed| client(&app, 1000 + seed))).await;
    let answers: Vec<_> = runs.into_iter().flatten().collect();
    assert_eq!(answers.len(), CLIENTS as usize * OPS_PER_CLIENT);

    let mut tally: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for (op, status, _) in &answers {
        *tally.entry((*op, status.as_u16())).or_default() += 1;
    }
    let server_errors: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| status.is_server_error())
        .map(|(op, status, body)| format!("{op} {status}: {body}"))
        .collect();
    let logs = captured_logs();
    let errors: Vec<&str> = logs
        .get(logs_before..)
        .unwrap_or(&logs)
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert!(
        server_errors.is_empty(),
        "{} of {} calls answered 5xx (tally {tally:?}): {server_errors:?}; errors logged: {errors:#?}",
        server_errors.len(),
        answers.len()
    );
    // Every answer is one the contract names for these calls: a recreate of
    // an id with no live generation is a 404, nothing else is refused.
    for (op, status, body) in &answers {
        let expected: &[u16] = match *op {
            "put" => &[200, 201, 202],
            "delete" => &[202, 204],
            _ => &[200, 201, 202, 404],
        };
        assert!(
            expected.contains(&status.as_u16()),
            "{op} answered {status}: {body}"
        );
    }
    // The mix really raced: each kind of call happened, and recreates found
    // live generations as well as none.
    for key in [("put", 201), ("delete", 202), ("recreate", 404)] {
        assert!(tally.contains_key(&key), "no {key:?} in {tally:?}");
    }
    assert!(
        tally
            .iter()
            .any(|((op, status), _)| *op == "recreate" && *status != 404),
        "no recreate of a live generation in {tally:?}"
    );

    eventually(
        Duration::from_secs(60),
        "no job open and every generation settled",
        || async { outstanding(&app).await == (0, 0) },
    )
    .await;

    // Each id's recorded intent is what LaunchDarkly holds: a wanted one
    // is exactly one ready environment of ours upstream, an unwanted one none.
    let upstream = demo_envs(&sim);
    for id in IDS {
        let generations: Vec<(String, String, String)> = sqlx::query_as(
            "select environment_key, desired, status from environments
              where tenant_id = 'acme' and ephemeral_id = $1",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        assert!(!generations.is_empty(), "{id} was never created");
        let ours: Vec<&str> = upstream
            .iter()
            .filter(|e| generations.iter().any(|(key, _, _)| *key == e.key))
            .map(|e| e.key.as_str())
            .collect();
        let wanted: Vec<&(String, String, String)> = generations
            .iter()
            .filter(|(_, desired, _)| desired == "present")
            .collect();
        match wanted.as_slice() {
            [] => assert!(ours.is_empty(), "{id} is not wanted but {ours:?} exist"),
            [(key, _, status)] => {
                assert_eq!(status, "ready", "{id}");
                assert_eq!(ours, [key.as_str()], "{id}");
                let (code, body) = get_env(&app, "acme", id).await;
                assert_eq!(code, StatusCode::OK, "{body}");
                assert_eq!(body["status"], "ready", "{body}");
            }
            more => panic!("{id} has {} wanted generations", more.len()),
        }
        for (key, desired, status) in &generations {
            if desired == "absent" {
                assert_eq!(status, "deleted", "{id} {key}");
            }
        }
    }

    let logs = captured_logs();
    let during = logs.get(logs_before..).unwrap_or(&logs);
    let deadlocks = during.matches("deadlock detected").count();
    assert_eq!(
        deadlocks, 0,
        "Postgres reported {deadlocks} deadlock(s) during the run (calls: {tally:?})"
    );
    eprintln!("calls by (operation, status): {tally:?}");
}
