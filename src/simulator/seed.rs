//! The demo account every simulator starts with (unless `seed: false`): project
//! `demo` with `production` (critical), `staging` and `test`, flags whose state
//! differs per environment, and enough more that lists span several pages.
//!
//! Every project has a boolean and a multivariate (string) flag. The source
//! environments (`demo`'s `staging`, `mobile-app`'s `beta`) also have a
//! targeting rule and individual targets on them, so a clone has more to copy
//! than on/off.

use serde_json::Value;

use super::model::{
    SimAccount, SimClause, SimEnvironment, SimFlag, SimFlagConfig, SimFlagState, SimProject,
    SimRule, SimServe, SimTarget,
};

/// The seeded account's id.
pub const DEMO_ACCOUNT: &str = "acct-demo";
/// The seeded project's key.
pub const DEMO_PROJECT: &str = "demo";

fn state(on: bool, fallthrough_variation: usize, off_variation: usize) -> SimFlagConfig {
    SimFlagConfig::from(SimFlagState {
        on,
        fallthrough_variation,
        off_variation,
    })
}

/// A rule serving `variation` to contexts of `kind` whose `attribute` matches
/// one of `values` by `op`.
fn rule(
    description: &str,
    kind: &str,
    attribute: &str,
    op: &str,
    values: &[&str],
    variation: usize,
) -> SimRule {
    SimRule {
        id: uuid::Uuid::new_v4().to_string(),
        description: Some(description.to_owned()),
        clauses: vec![SimClause {
            id: uuid::Uuid::new_v4().to_string(),
            context_kind: kind.to_owned(),
            attribute: attribute.to_owned(),
            op: op.to_owned(),
            values: values
                .iter()
                .map(|v| Value::String((*v).to_owned()))
                .collect(),
            negate: false,
        }],
        serve: SimServe::Variation(variation),
        track_events: false,
    }
}

fn target(kind: &str, variation: usize, keys: &[&str]) -> SimTarget {
    SimTarget {
        context_kind: kind.to_owned(),
        variation,
        values: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// `config` with rules and individual targets.
fn targeted(
    mut config: SimFlagConfig,
    rules: Vec<SimRule>,
    targets: Vec<SimTarget>,
) -> SimFlagConfig {
    config.rules = rules;
    config.targets = targets;
    config
}

fn environment(
    key: &str,
    name: &str,
    color: &str,
    critical: bool,
    segments: usize,
) -> SimEnvironment {
    let mut env = SimEnvironment::new(key, name, color);
    env.critical = critical;
    env.segment_count = segments;
    env.default_ttl = 5;
    if critical {
        env.require_comments = true;
        env.confirm_changes = true;
    }
    env
}

fn demo_project() -> SimProject {
    let mut project = SimProject::new(DEMO_PROJECT, "Demo project");
    project.tags = vec!["demo".to_owned()];
    project.include_in_snippet_by_default = true;
    project.flags = vec![
        SimFlag::boolean("new-checkout", "New checkout flow"),
        SimFlag::boolean("dark-mode", "Dark mode"),
        SimFlag::multivariate(
            "search-ranking",
            "Search ranking algorithm",
            &["classic", "ml-v1", "ml-v2"],
        ),
        SimFlag::boolean("maintenance-banner", "Maintenance banner"),
    ];
    // (flag, production, staging, test)
    let states = [
        (
            "new-checkout",
            state(false, 0, 1),
            // Beta testers and two named users see it; everyone else does not.
            targeted(
                state(true, 1, 1),
                vec![rule(
                    "Beta testers",
                    "user",
                    "email",
                    "endsWith",
                    &["@beta.example.com"],
                    0,
                )],
                vec![
                    target("user", 0, &["qa-alice", "qa-bob"]),
                    target("user", 1, &["support-carol"]),
                    target("organization", 0, &["acme-corp"]),
                ],
            ),
            state(true, 0, 1),
        ),
        (
            "dark-mode",
            state(true, 0, 1),
            state(true, 0, 1),
            state(false, 0, 1),
        ),
        (
            "search-ranking",
            state(true, 1, 0),
            targeted(
                state(true, 2, 0),
                vec![rule(
                    "Oceania gets ml-v1",
                    "user",
                    "country",
                    "in",
                    &["NZ", "AU"],
                    1,
                )],
                vec![target("user", 0, &["qa-alice"])],
            ),
            state(false, 0, 0),
        ),
        (
            "maintenance-banner",
            state(false, 0, 1),
            state(false, 0, 1),
            state(true, 0, 1),
        ),
    ];
    let mut production = environment("production", "Production", "417505", true, 12);
    production.tags = vec!["prod".to_owned()];
    let mut staging = environment("staging", "Staging", "F5A623", false, 3);
    staging.tags = vec!["pre-prod".to_owned()];
    let mut test = environment("test", "Test", "4A90E2", false, 0);
    test.tags = vec!["pre-prod".to_owned()];
    for (flag, prod, stag, tst) in states {
        production.flags.insert(flag.to_owned(), prod);
        staging.flags.insert(flag.to_owned(), stag);
        test.flags.insert(flag.to_owned(), tst);
    }
    project.environments = vec![production, staging, test];
    project
}

fn mobile_project() -> SimProject {
    let mut project = SimProject::new("mobile-app", "Mobile app");
    project.tags = vec!["mobile".to_owned()];
    project.flags = vec![
        SimFlag::boolean("offline-mode", "Offline mode"),
        SimFlag::multivariate(
            "onboarding-flow",
            "Onboarding flow",
            &["classic", "short", "video"],
        ),
    ];
    let mut production = environment("production", "Production", "417505", true, 2);
    production
        .flags
        .insert("offline-mode".to_owned(), state(false, 0, 1));
    production
        .flags
        .insert("onboarding-flow".to_owned(), state(true, 0, 0));
    let mut beta = environment("beta", "Beta", "9B59B6", false, 1);
    beta.flags.insert(
        "offline-mode".to_owned(),
        targeted(
            state(true, 0, 1),
            vec![rule(
                "Old phones",
                "device",
                "os",
                "startsWith",
                &["android-9"],
                1,
            )],
            vec![target("user", 1, &["tester-dan"])],
        ),
    );
    beta.flags.insert(
        "onboarding-flow".to_owned(),
        targeted(
            state(true, 1, 0),
            vec![rule("Video testers", "user", "groups", "in", &["video"], 2)],
            vec![target("user", 0, &["tester-dan"])],
        ),
    );
    project.environments = vec![production, beta];
    project
}

/// A project with more environments than one default page (20) holds, some of
/// them tagged, so pickers and tag filters have pages to walk.
fn sandbox_project() -> SimProject {
    let mut project = SimProject::new("sandbox", "Sandbox (many environments)");
    project.flags = vec![
        SimFlag::boolean("experiment", "Experiment"),
        SimFlag::multivariate("theme", "Theme", &["light", "dark", "system"]),
    ];
    for i in 1..=23 {
        let mut env = environment(
            &format!("qa-{i:02}"),
            &format!("QA {i:02}"),
            "7F8C8D",
            false,
            0,
        );
        env.tags = if i % 2 == 1 {
            vec!["qa".to_owned(), "odd".to_owned()]
        } else {
            vec!["qa".to_owned()]
        };
        env.flags
            .insert("experiment".to_owned(), state(i % 3 == 0, 0, 1));
        env.flags
            .insert("theme".to_owned(), state(i % 2 == 0, i % 3, 0));
        project.environments.push(env);
    }
    project
}

/// The seeded account, plus `extra_projects` filler projects (`project-01`...)
/// for exercising project pagination.
pub fn demo_account(extra_projects: usize) -> SimAccount {
    let mut account = SimAccount::new(DEMO_ACCOUNT);
    account.projects = vec![demo_project(), mobile_project(), sandbox_project()];
    for i in 1..=extra_projects {
        let mut project = SimProject::new(&format!("project-{i:02}"), &format!("Project {i:02}"));
        project.flags = vec![
            SimFlag::boolean("enabled", "Enabled"),
            SimFlag::multivariate("tier", "Tier", &["free", "pro"]),
        ];
        project.environments = vec![
            environment("production", "Production", "417505", true, 0),
            environment("test", "Test", "4A90E2", false, 0),
        ];
        let defaults = project.default_flag_states();
        for env in &mut project.environments {
            env.flags = defaults.clone();
        }
        account.projects.push(project);
    }
    account
}
