//! Feature flags in the simulator: the model, LaunchDarkly's representations,
//! getFeatureFlags / getFeatureFlag / patchFeatureFlag (semantic patch and JSON
//! patch), the evaluation helper, and the environment page.

pub(crate) mod api;
pub mod eval;
mod input;
mod jsonpatch;
pub mod model;
pub(crate) mod page;
pub(crate) mod render;
pub(crate) mod semantic;

pub use api::SEMANTIC_PATCH_PARAMETER;
pub use semantic::{ENVIRONMENT_INSTRUCTIONS, FLAG_INSTRUCTIONS};
