//! The LaunchDarkly integration listing: `manifest.json` and its icons must
//! pass LaunchDarkly's own schema and the framework's extra checks.

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// LaunchDarkly's `manifest.schema.json` (launchdarkly/integration-framework),
/// copied unmodified into `tests/it/data/` so the test runs from a checkout.
fn schema() -> Value {
    read_json("tests/it/data/integration-manifest.schema.json")
}

#[test]
fn the_integration_manifest_is_valid_against_launchdarklys_schema() {
    let manifest = read_json("manifest.json");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "manifest.json is invalid: {errors:#?}");
}

#[test]
fn the_manifest_describes_an_external_eaas_integration() {
    let manifest = read_json("manifest.json");
    assert_eq!(
        manifest["otherCapabilities"],
        serde_json::json!(["external"])
    );
    assert!(
        manifest.get("capabilities").is_none(),
        "no capabilities block"
    );
    let overview = manifest["overview"].as_str().unwrap();
    assert!(overview.ends_with('.'), "overview ends with a period");
}

#[test]
fn the_manifest_icons_exist_and_are_svg() {
    let manifest = read_json("manifest.json");
    for kind in ["square", "horizontal"] {
        let path = manifest["icons"][kind].as_str().unwrap();
        let text = std::fs::read_to_string(format!("{ROOT}/{path}"))
            .unwrap_or_else(|e| panic!("icon {path}: {e}"));
        assert!(
            text.trim_start().starts_with("<svg"),
            "{path} is not an SVG"
        );
        assert!(
            text.contains("xmlns=\"http://www.w3.org/2000/svg\""),
            "{path}"
        );
    }
}

#[test]
fn the_schema_check_would_catch_a_broken_manifest() {
    let mut manifest = read_json("manifest.json");
    manifest["categories"] = serde_json::json!(["not-a-category"]);
    manifest["capabilities"] = serde_json::json!({"unknown": true});
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(!validator.is_valid(&manifest));
}
