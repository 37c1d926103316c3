//! The test harness, in one place: the real app on port 0 with a fresh
//! database (`helpers`), a headless browser (`browser_support`) and the
//! OpenAPI conformance checker shared by the simulator's and the API's spec
//! tests (`conformance`).

pub mod browser_support;
pub mod conformance;
pub mod helpers;
