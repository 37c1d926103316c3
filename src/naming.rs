//! Derived environment keys, names and ownership tags, and the preview the
//! settings page shows of the next environment.
//!
//! Keys are never taken raw from the vendor: `<prefix>-<slug>-<hash>`, where
//! the slug is a readable, sanitised form of the ephemeral id and the hash
//! (of tenant, ephemeral id and generation) makes every generation's key
//! unique, so a delete of one generation and the create of the next never
//! touch the same LaunchDarkly environment.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::{EphemeralId, TenantId};
use crate::store::settings::TenantSettings;

/// Carried by every environment any ld-eaas deployment creates.
pub const OWNER_TAG: &str = "ld-eaas";
/// Longest readable part of a key.
const MAX_SLUG: usize = 32;
/// Hex digits of the hash in a key (40 bits).
const HASH_DIGITS: usize = 10;
/// LaunchDarkly shows names in lists; very long ones help nobody.
const MAX_NAME_CHARS: usize = 128;
/// The placeholders a name template may use.
pub const PLACEHOLDERS: [&str; 3] = ["{ephemeral_id}", "{tenant_id}", "{generation}"];

/// The tag naming the tenant an environment belongs to: a hash, because
/// tenant ids may hold characters tags may not. With the instance tag it lets
/// the sweeper list exactly one tenant's environments even when two tenants
/// of one deployment share a LaunchDarkly project.
pub fn tenant_tag(tenant: &TenantId) -> String {
    let digest = Sha256::digest(format!("ld-eaas/tenant-tag/v1\u{0}{tenant}").as_bytes());
    format!("ld-eaas-tenant.{}", &hex::encode(digest)[..12])
}

/// The tags that mark an environment as this deployment's, for this tenant.
pub fn ownership_tags(instance_tag: &str, tenant: &TenantId) -> Vec<String> {
    vec![
        OWNER_TAG.to_owned(),
        instance_tag.to_owned(),
        tenant_tag(tenant),
    ]
}

/// Ownership tags plus the request's own, without duplicates, sorted.
pub fn environment_tags(instance_tag: &str, tenant: &TenantId, extra: &[String]) -> Vec<String> {
    let mut tags = ownership_tags(instance_tag, tenant);
    for tag in extra {
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            tags.push(tag.clone());
        }
    }
    tags.sort();
    tags
}

/// A readable, key-safe form of an ephemeral id: lowercase, runs of other
/// characters folded into one `-`, at most 32 characters, starting and ending
/// with a letter or digit. May be empty.
pub fn slug(ephemeral_id: &str) -> String {
    let mut out = String::with_capacity(ephemeral_id.len());
    for c in ephemeral_id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(MAX_SLUG)
        .collect();
    trimmed
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The LaunchDarkly key of one generation. Matches LaunchDarkly's key rule
/// (`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`) because the prefix starts with a letter
/// or digit (checked when settings are saved) and the rest is slug and hex.
pub fn environment_key(
    prefix: &str,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    generation: i32,
) -> String {
    let digest = Sha256::digest(
        format!("ld-eaas/environment-key/v1\u{0}{tenant}\u{0}{ephemeral_id}\u{0}{generation}")
            .as_bytes(),
    );
    let hash = &hex::encode(digest)[..HASH_DIGITS];
    match slug(ephemeral_id.as_str()) {
        s if s.is_empty() => format!("{prefix}-{hash}"),
        s => format!("{prefix}-{s}-{hash}"),
    }
}

/// The name template with its placeholders filled in.
pub fn environment_name(
    template: &str,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    generation: i32,
) -> String {
    let name = template
        .replace("{ephemeral_id}", ephemeral_id.as_str())
        .replace("{tenant_id}", tenant.as_str())
        .replace("{generation}", &generation.to_string());
    let name = name.trim();
    if name.chars().count() <= MAX_NAME_CHARS {
        name.to_owned()
    } else {
        name.chars().take(MAX_NAME_CHARS).collect()
    }
}

/// What the next environment made with these settings will look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub ephemeral_id: String,
    pub project_key: String,
    pub environment_key: String,
    pub environment_name: String,
    pub source_environment_key: String,
    pub color: String,
    pub tags: Vec<String>,
    pub ttl_seconds: Option<i64>,
}

/// The first generation of `example` under `settings` (saved or draft).
pub fn preview(
    settings: &TenantSettings,
    tenant: &TenantId,
    example: &EphemeralId,
    instance_tag: &str,
) -> Preview {
    Preview {
        ephemeral_id: example.to_string(),
        project_key: settings.project_key.clone(),
        environment_key: environment_key(&settings.key_prefix, tenant, example, 1),
        environment_name: environment_name(&settings.name_template, tenant, example, 1),
        source_environment_key: settings.source_environment_key.clone(),
        color: settings.color.clone(),
        tags: environment_tags(instance_tag, tenant, &[]),
        ttl_seconds: settings.default_ttl_seconds,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::EnvironmentKey;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }
    fn e(s: &str) -> EphemeralId {
        EphemeralId::parse(s).unwrap()
    }

    #[test]
    fn slugs_are_readable_and_key_safe() {
        assert_eq!(slug("PR-1234"), "pr-1234");
        assert_eq!(slug("acme:feature/x"), "acme-feature-x");
        assert_eq!(slug("::--a..b__"), "a..b");
        assert_eq!(slug("---"), "");
        assert_eq!(slug(&"x".repeat(100)).len(), MAX_SLUG);
        assert_eq!(
            slug("abc-defghijklmnopqrstuvwxyz012345-tail"),
            "abc-defghijklmnopqrstuvwxyz01234"
        );
    }

    #[test]
    fn keys_follow_launchdarkly_rules_and_differ_per_generation_and_tenant() {
        let ids = ["PR-1", ":::", "a", &"Z9.".repeat(40), "x_y:z"];
        for id in ids {
            for generation in [1, 2, 99] {
                let key = environment_key("eph", &t("acme"), &e(id), generation);
                assert!(EnvironmentKey::parse(&key).is_ok(), "{key}");
                assert!(key.len() <= 20 + 1 + MAX_SLUG + 1 + HASH_DIGITS, "{key}");
            }
        }
        let one = environment_key("eph", &t("acme"), &e("pr-1"), 1);
        assert!(one.starts_with("eph-pr-1-"), "{one}");
        assert_eq!(one, environment_key("eph", &t("acme"), &e("pr-1"), 1));
        assert_ne!(one, environment_key("eph", &t("acme"), &e("pr-1"), 2));
        assert_ne!(one, environment_key("eph", &t("other"), &e("pr-1"), 1));
        assert_ne!(one, environment_key("eph", &t("acme"), &e("PR-1"), 1));
        assert_eq!(
            environment_key("p", &t("acme"), &e(":::"), 1).len(),
            2 + HASH_DIGITS
        );
    }

    #[test]
    fn names_fill_placeholders_and_stay_short() {
        assert_eq!(
            environment_name(
                "Preview {ephemeral_id} ({tenant_id}) #{generation}",
                &t("acme"),
                &e("pr-7"),
                3
            ),
            "Preview pr-7 (acme) #3"
        );
        let long = environment_name(&"n".repeat(300), &t("a"), &e("b"), 1);
        assert_eq!(long.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn tags_are_tag_shaped_deduplicated_and_include_ownership() {
        let tags = environment_tags(
            "ld-eaas.default",
            &t("acme:eu"),
            &["team-a".into(), "LD-EAAS".into()],
        );
        assert_eq!(tags.len(), 4, "{tags:?}");
        for tag in &tags {
            assert!(crate::ids::Tag::parse(tag).is_ok(), "{tag}");
        }
        assert!(tags.contains(&tenant_tag(&t("acme:eu"))));
        assert_ne!(tenant_tag(&t("acme:eu")), tenant_tag(&t("acme_eu")));
    }
}
