//! atg-testkit: a local stand-in for the Azure endpoints `atg` talks to, plus helpers for tests.
//!
//! One HTTPS server on one loopback port answers, by the request's `Host` header, as
//! - the Entra token endpoint (`login.microsoftonline.com` and the sovereign equivalents), see [`token`];
//! - the Key Vault data plane for any `<vault>.vault.azure.net|.cn|.usgovcloudapi.net` host (`keyvault`);
//! - a small generic ARM resource store (`management.azure.com` and equivalents, `arm`);
//! - a control API under `/_emulator/` on any host (request log, runtime configuration).
//!
//! Faults come in two kinds: before a request takes effect (429, 503, reset) and after a Key
//! Vault or ARM write took effect (a lost answer: reset, 500, 503 or timeout), both chosen by
//! rate and, optionally, by operation (`METHOD collection`).
//!
//! Clients reach it by resolving the real Azure host names to the emulator's address and trusting the
//! test CA it generates at start ([`Emulator::ca_pem`]). Behaviour knobs (latency, throttling, fault
//! injection, forbidden vaults, per-vault tenants, principals) live in [`EmulatorOptions`].
//!
//! This crate is test infrastructure: it must never be linked into the `atg` binary itself.

mod arm;
pub mod azurite;
pub mod bolt_relay;
mod control;
mod http;
mod keyvault;
pub mod kv_rest;
pub mod options;
mod pki;
mod server;
pub mod storage_gateway;
pub mod synthetic_listing;
pub mod token;
pub mod web_app;

pub use options::{
    operation_matches, EmulatorOptions, FaultKind, FaultOptions, LostAnswerKind, LostAnswerOptions,
    Principal, ThrottleOptions, DEFAULT_TENANT_ID,
};
pub use server::{Emulator, RecordedRequest, Service};
pub use token::{mint_token, mint_token_with_expiry};
