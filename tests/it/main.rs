//! End-to-end tests: the real `atg` binary against the local emulators.
//! One test binary, one module per area; `common` starts what each test needs.

mod cli;
mod common;
mod key_vault;
