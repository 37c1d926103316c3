//! Property tests: ids, key derivation, name templates and sealing hold
//! their rules for any input, not just the examples elsewhere.

use chrono::Utc;
use ld_eaas::crypto::{Keyring, SealedColumn};
use ld_eaas::ids::{EnvironmentKey, EphemeralId, Tag, TenantId};
use ld_eaas::naming as keys;
use ld_eaas::settings::{SettingsInput, normalize};
use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

const ID_CHARS: &str = "[A-Za-z0-9._:-]";

fn id() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{ID_CHARS}{{1,128}}"))
        .unwrap()
        .prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn prefix() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,19}").unwrap()
}

fn launchdarkly_key_rule(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ids_in_the_documented_alphabet_parse_and_round_trip(raw in id()) {
        let tenant = TenantId::parse(&raw).unwrap();
        prop_assert_eq!(tenant.as_str(), raw.as_str());
        let json = serde_json::to_string(&tenant).unwrap();
        let back: TenantId = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, tenant);
        prop_assert!(EphemeralId::parse(&raw).is_ok());
    }

    #[test]
    fn ids_with_any_other_character_are_refused(
        head in "[A-Za-z0-9]{0,10}",
        bad in any::<char>().prop_filter("outside the alphabet", |c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        }),
        tail in "[A-Za-z0-9]{0,10}",
    ) {
        let raw = format!("{head}{bad}{tail}");
        prop_assert!(TenantId::parse(&raw).is_err());
        prop_assert!(EphemeralId::parse(&raw).is_err());
        prop_assert!(serde_json::from_value::<EphemeralId>(serde_json::json!(raw)).is_err());
    }

    #[test]
    fn derived_keys_follow_launchdarklys_rule_and_differ_per_generation(
        prefix in prefix(),
        tenant in id(),
        eph in id(),
        generation in 1..i32::MAX,
    ) {
        let tenant = TenantId::parse(&tenant).unwrap();
        let eph = EphemeralId::parse(&eph).unwrap();
        let key = keys::environment_key(&prefix, &tenant, &eph, generation);
        prop_assert!(launchdarkly_key_rule(&key), "{}", key);
        prop_assert!(key.len() <= 20 + 1 + 32 + 1 + 10, "{}", key);
        prop_assert!(EnvironmentKey::parse(&key).is_ok());
        prop_assert_eq!(&key, &keys::environment_key(&prefix, &tenant, &eph, generation));
        prop_assert_ne!(&key, &keys::environment_key(&prefix, &tenant, &eph, generation - 1));
        let slug = keys::slug(eph.as_str());
        prop_assert!(slug.is_empty() || launchdarkly_key_rule(&slug), "{}", slug);
    }

    #[test]
    fn the_tenant_tag_is_a_valid_launchdarkly_tag(tenant in id()) {
        let tenant = TenantId::parse(&tenant).unwrap();
        prop_assert!(Tag::parse(&keys::tenant_tag(&tenant)).is_ok());
    }

    #[test]
    fn accepted_name_templates_fill_every_placeholder_within_the_length_limit(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{ephemeral_id}".to_owned()),
                Just("{tenant_id}".to_owned()),
                Just("{generation}".to_owned()),
                "[^{}\\p{Cc}]{0,12}",
            ],
            0..8,
        ),
        tenant in id(),
        eph in id(),
        generation in 1..10_000i32,
    ) {
        let template: String = parts.concat();
        let input = SettingsInput {
            project_key: "demo".into(),
            source_environment_key: "staging".into(),
            name_template: Some(template.clone()),
            ..SettingsInput::default()
        };
        let Ok(settings) = normalize(&input, fixed_now()) else {
            // Refused only for length (blank takes the default).
            prop_assert!(template.trim().chars().count() > 200);
            return Ok(());
        };
        let tenant = TenantId::parse(&tenant).unwrap();
        let eph = EphemeralId::parse(&eph).unwrap();
        let name = keys::environment_name(&settings.name_template, &tenant, &eph, generation);
        prop_assert!(name.chars().count() <= 128);
        prop_assert!(!name.chars().any(char::is_control), "{:?}", name);
        for placeholder in keys::PLACEHOLDERS {
            prop_assert!(!name.contains(placeholder), "{:?}", name);
        }
    }

    #[test]
    fn name_templates_with_a_control_character_are_refused_on_their_field(
        before in "[a-zA-Z ]{0,20}",
        bad in prop::sample::select(
            (0u32..0xa0)
                .filter_map(char::from_u32)
                .filter(|c| c.is_control() && !c.is_whitespace())
                .collect::<Vec<_>>(),
        ),
        after in "[a-zA-Z ]{0,20}",
    ) {
        let input = SettingsInput {
            project_key: "demo".into(),
            source_environment_key: "staging".into(),
            name_template: Some(format!("{before}{bad}{after}")),
            ..SettingsInput::default()
        };
        let errors = normalize(&input, fixed_now()).unwrap_err();
        prop_assert_eq!(errors.len(), 1);
        prop_assert_eq!(errors[0].field, "name_template");
    }

    #[test]
    fn sealed_values_open_only_for_their_tenant_and_column(
        plaintext in any::<String>(),
        tenant in id(),
        other in id(),
        flip in any::<prop::sample::Index>(),
    ) {
        let keyring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let tenant = TenantId::parse(&tenant).unwrap();
        let secret = SecretString::from(plaintext.clone());
        let sealed = keyring.seal(&tenant, SealedColumn::AccessToken, &secret).unwrap();
        let opened = keyring.open(&tenant, SealedColumn::AccessToken, &sealed).unwrap();
        prop_assert_eq!(opened.expose_secret(), plaintext.as_str());
        prop_assert!(!sealed.contains(&plaintext) || plaintext.len() < 8);
        prop_assert_ne!(&sealed, &keyring.seal(&tenant, SealedColumn::AccessToken, &secret).unwrap());
        prop_assert!(keyring.open(&tenant, SealedColumn::RefreshToken, &sealed).is_err());
        if other != tenant.as_str() {
            let other = TenantId::parse(&other).unwrap();
            prop_assert!(keyring.open(&other, SealedColumn::AccessToken, &sealed).is_err());
        }
        // Any change to the ciphertext is detected.
        let mut tampered = sealed.clone().into_bytes();
        let start = sealed.rfind('.').unwrap() + 1;
        let at = start + flip.index(tampered.len() - start);
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        if tampered != sealed {
            prop_assert!(keyring.open(&tenant, SealedColumn::AccessToken, &tampered).is_err());
        }
        let other_keys = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        prop_assert!(other_keys.open(&tenant, SealedColumn::AccessToken, &sealed).is_err());
    }
}

/// A fixed instant: the rules only compare against it.
fn fixed_now() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}
