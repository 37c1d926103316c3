//! The settings draft: its preview, and its check and save by the settings
//! rules, with problems reported per field.

use super::{FieldErrors, Preview};
use crate::app::AppState;
use crate::connections::{CallError, ConnectionError};
use crate::error::AppError;
use crate::ids::{EphemeralId, TenantId};
use crate::launchdarkly::LdError;
use crate::naming as keys;
use crate::settings::{self as rules, SettingsError, SettingsInput};
use crate::web::layout;
use crate::web::settings::SettingsDraft;

/// The rules' field names, as the form names them.
fn form_field(field: &str) -> &str {
    match field {
        "default_ttl_seconds" => "ttl_value",
        other => other,
    }
}

/// The draft as the settings rules take it; a TTL the form cannot read is
/// reported on its field.
fn input(draft: &SettingsDraft, errors: &mut FieldErrors) -> SettingsInput {
    let default_ttl_seconds = match draft.ttl_seconds() {
        Ok(ttl) => ttl,
        Err(message) => {
            errors.add("ttl_value", message);
            None
        }
    };
    SettingsInput {
        project_key: draft.project_key.trim().to_owned(),
        source_environment_key: draft.source_environment_key.trim().to_owned(),
        name_template: Some(draft.name_template.clone()),
        color: Some(draft.color_hex()),
        default_ttl_seconds,
        key_prefix: Some(draft.key_prefix.clone()),
    }
}

/// The example preview environment shown on the settings page.
const EXAMPLE_ID: &str = "pr-1234";

/// What the next environment would look like with the draft. A project or
/// source not chosen yet does not stop the preview of the rest.
pub fn preview(
    state: &AppState,
    tenant: &TenantId,
    draft: &SettingsDraft,
) -> Result<Preview, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut input = input(draft, &mut errors);
    let project_missing = input.project_key.is_empty();
    let source_missing = input.source_environment_key.is_empty();
    if project_missing {
        input.project_key = "project".to_owned();
    }
    if source_missing {
        input.source_environment_key = "source".to_owned();
    }
    let settings = match rules::normalize(&input, state.now()) {
        Ok(settings) => settings,
        Err(problems) => {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
            return Err(errors.in_form_order());
        }
    };
    if !errors.is_empty() {
        return Err(errors.in_form_order());
    }
    let Ok(example) = EphemeralId::parse(EXAMPLE_ID) else {
        return Err(errors);
    };
    let p = keys::preview(&settings, tenant, &example, &state.config.instance_tag());
    Ok(Preview {
        example_id: p.ephemeral_id,
        project_key: if project_missing {
            String::new()
        } else {
            p.project_key
        },
        environment_key: p.environment_key,
        environment_name: p.environment_name,
        source_environment_key: if source_missing {
            String::new()
        } else {
            p.source_environment_key
        },
        color: p.color,
        tags: p.tags,
        expires: p.ttl_seconds.map_or_else(
            || "Never, unless deleted".to_owned(),
            |s| format!("{} after creation", layout::duration(s)),
        ),
    })
}

/// Checks the draft (shape, then with LaunchDarkly) and saves it. Problems
/// come back per field; `form` holds one that belongs to no field.
pub async fn validate_and_save(
    state: &AppState,
    tenant: &TenantId,
    draft: &SettingsDraft,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    let input = input(draft, &mut errors);
    if !errors.is_empty() {
        // Report the rules' findings on the other fields too.
        if let Err(problems) = rules::normalize(&input, state.now()) {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
        }
        return Err(errors);
    }
    match rules::validate_and_save(state, tenant, &input, "browser").await {
        Ok(_) => Ok(()),
        Err(SettingsError::Fields(problems)) => {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
            Err(errors)
        }
        Err(err) => {
            errors.add("form", unsaved(err));
            Err(errors)
        }
    }
}

/// Why settings that could not be checked were not saved, for the customer.
fn unsaved(err: SettingsError) -> String {
    match err {
        SettingsError::Internal(_)
        | SettingsError::Unavailable(CallError::Connection(ConnectionError::Internal(_))) => {
            AppError::from(err).log();
            "Something went wrong on our side; the settings were not saved. Try again in a moment."
                .to_owned()
        }
        SettingsError::Unavailable(
            CallError::Connection(ConnectionError::NeedsReconnect)
            | CallError::Ld(LdError::Unauthorized)
            | CallError::Connection(ConnectionError::Upstream(LdError::Unauthorized)),
        ) => {
            "LaunchDarkly no longer accepts our access to this account: reconnect above, then save."
                .to_owned()
        }
        SettingsError::Unavailable(CallError::Connection(ConnectionError::NotConnected)) => {
            "Connect LaunchDarkly first, then save.".to_owned()
        }
        other => {
            let err = AppError::from(other);
            err.log();
            format!(
                "The settings could not be checked with LaunchDarkly, so they were not saved: {}",
                err.public_message()
            )
        }
    }
}
