//! A preview's own choices (DESIGN.md "Per-preview choices"): which of
//! them LaunchDarkly did not know when a create failed, and the flag values
//! applied to a created (or adopted) environment before it is reported ready.
//!
//! Applying is idempotent: a flag that already serves the requested value to
//! everyone is left alone, so a retry (or a crash between the create and the
//! patches, which adopts the environment on the next attempt) only finishes
//! what is missing.

use serde_json::Value;

use super::{EnvOutcome, MAX_UNEXPECTED_ATTEMPTS, Retry, classify};
use crate::app::AppState;
use crate::connections::{CallError, Upstream};
use crate::environments::{EnvironmentRecord, FailureCode};
use crate::launchdarkly::{FeatureFlag, FlagError, Instruction, LdError};

/// Worth a few more tries, not forever.
fn unexpected(error: String, attempts: i32) -> EnvOutcome {
    if attempts < MAX_UNEXPECTED_ATTEMPTS {
        EnvOutcome::Retry(Retry::Transient(error))
    } else {
        EnvOutcome::failed(error)
    }
}

fn rejected(code: FailureCode, error: String) -> EnvOutcome {
    EnvOutcome::Failed {
        error,
        code: Some(code),
    }
}

/// A create answered 404: the project, or the source in it, is unknown (or
/// out of the connection's reach).
pub(super) async fn unknown_project_or_source(
    state: &AppState,
    up: &mut Upstream<'_>,
    env: &EnvironmentRecord,
    attempts: i32,
) -> EnvOutcome {
    let project = env.project_key.as_str();
    let found = up
        .call("get_project", |auth| async move {
            state.ld.get_project(&auth, project).await
        })
        .await;
    match found {
        Ok(_) => rejected(
            FailureCode::UnknownSourceEnvironment,
            format!(
                "LaunchDarkly project '{project}' has no source environment '{}' to clone from",
                env.source_environment_key
            ),
        ),
        Err(CallError::Ld(LdError::NotFound | LdError::Forbidden { .. })) => rejected(
            FailureCode::UnknownProject,
            format!("LaunchDarkly has no project '{project}' that the connection can reach"),
        ),
        Err(e) => classify(e, "look up the project", attempts),
    }
}

/// Runs one flag call; a flag-specific refusal comes back as `Ok(Err(..))`,
/// anything else as the call's error (so a 401 refreshes the credential).
async fn flag_call<F, Fut>(
    up: &mut Upstream<'_>,
    operation: &'static str,
    op: F,
) -> Result<Result<FeatureFlag, FlagError>, CallError>
where
    F: Fn(crate::launchdarkly::RequestAuth) -> Fut,
    Fut: std::future::Future<Output = Result<FeatureFlag, FlagError>>,
{
    up.call(operation, |auth| {
        let answer = op(auth);
        async move {
            match answer.await {
                Ok(flag) => Ok(Ok(flag)),
                Err(FlagError::Ld(e)) => Err(e),
                Err(other) => Ok(Err(other)),
            }
        }
    })
    .await
}

/// Makes the environment serve each requested flag value to every context.
/// `None`: all applied; otherwise the outcome to record instead of ready.
pub(super) async fn apply_flags(
    state: &AppState,
    up: &mut Upstream<'_>,
    env: &EnvironmentRecord,
    attempts: i32,
) -> Option<EnvOutcome> {
    let Some(flags) = env.flags.as_object() else {
        return Some(EnvOutcome::failed(format!(
            "environment {} holds flag choices that are not an object",
            env.id
        )));
    };
    for (flag, value) in flags {
        if let Err(outcome) = apply_flag(state, up, env, flag, value, attempts).await {
            return Some(outcome);
        }
    }
    None
}

async fn apply_flag(
    state: &AppState,
    up: &mut Upstream<'_>,
    env: &EnvironmentRecord,
    flag: &str,
    value: &Value,
    attempts: i32,
) -> Result<(), EnvOutcome> {
    let (project, key) = (env.project_key.as_str(), env.environment_key.as_str());
    let unknown = || {
        rejected(
            FailureCode::UnknownFlag,
            format!("LaunchDarkly has no flag '{flag}' in project '{project}'"),
        )
    };
    let read = flag_call(up, "get_feature_flag", |auth| async move {
        state.ld.get_feature_flag(&auth, project, flag, key).await
    })
    .await;
    let current = match read {
        Ok(Ok(current)) => current,
        Ok(Err(FlagError::FlagNotFound { .. })) => return Err(unknown()),
        // Just created: LaunchDarkly may not show it everywhere yet.
        Ok(Err(e)) => {
            return Err(unexpected(
                format!("could not read flag '{flag}' in the new environment: {e}"),
                attempts,
            ));
        }
        Err(e) => return Err(classify(e, &format!("read flag '{flag}'"), attempts)),
    };
    if current.serves_everyone(key, value) {
        return Ok(());
    }
    let Some((_, variation)) = current.variation_for(value) else {
        let values: Vec<String> = current
            .variations
            .iter()
            .map(|v| v.value.to_string())
            .collect();
        return Err(rejected(
            FailureCode::InvalidFlagValue,
            format!(
                "{value} is none of the variations of flag '{flag}' (they are {})",
                values.join(", ")
            ),
        ));
    };
    let Some(variation_id) = variation.id.clone() else {
        return Err(EnvOutcome::failed(format!(
            "LaunchDarkly returned flag '{flag}' without variation ids"
        )));
    };
    let instructions = Instruction::serve_to_everyone(&variation_id);
    let instructions = instructions.as_slice();
    let patched = flag_call(up, "patch_feature_flag", |auth| async move {
        state
            .ld
            .patch_feature_flag_semantic(&auth, project, flag, key, instructions)
            .await
    })
    .await;
    match patched {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(FlagError::FlagNotFound { .. })) => Err(unknown()),
        Ok(Err(e)) => Err(unexpected(
            format!("could not set flag '{flag}': {e}"),
            attempts,
        )),
        Err(CallError::Ld(LdError::Forbidden { message })) => Err(EnvOutcome::failed(format!(
            "LaunchDarkly did not allow us to set flag '{flag}' (403 forbidden: {message}); the \
             connected token needs updateOn, updateFallthrough, updateOffVariation, updateRules \
             and updateTargets on proj/*:env/*;ld-eaas:flag/*"
        ))),
        Err(e) => Err(classify(e, &format!("set flag '{flag}'"), attempts)),
    }
}
