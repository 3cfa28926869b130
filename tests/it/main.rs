// A test that unwraps fails with the location, which is what we want; test helpers favour
// brevity over the pedantic API lints that matter for the product.
#![allow(
    clippy::unwrap_used,
    clippy::needless_pass_by_value,
    clippy::unused_self,
    clippy::case_sensitive_file_extension_comparisons
)]
//! End-to-end tests: the real `atg` binary against the local emulators.
//! One test binary, one module per area; `common` starts what each test needs.

mod api_management;
mod app_service;
mod arm;
mod cancel;
mod cli;
mod common;
mod conformance;
mod event_hubs;
mod graph;
mod inputs;
mod key_vault;
mod lost_answers;
mod operations;
mod plan;
mod report;
mod service_bus;
mod snapshots;
mod storage;
mod trust;
mod verify;
