//! atg: Azure tenant data-plane replication.
//!
//! Data flows one way:
//!
//! ```text
//! cli (clap types) -> commands (one fn per subcommand) -> orchestrator -> dataplane (plugins) -> azure (HTTP)
//!                                        \-> inventory (where resources come from)
//! ```
//!
//! - [`cli`]: flags only; [`settings`]: flags + environment → validated settings.
//! - [`commands`]: `deploy` (and `verify`, the same run read-only), `plugins`, completions, man.
//! - [`orchestrator`]: plan, mode semantics, concurrency, cancellation, dry-run, report.
//! - [`dataplane`]: the `DataPlanePlugin` trait, the static registry, the plugin kit (`kit/`) and one
//!   folder per service.
//! - [`azure`]: every HTTP call: clouds, credential chain, policies (host allow-list, write
//!   guard, retries), ARM client, classified errors, redacting types.
//! - [`inventory`]: source/target resource pairs (JSON today).
//! - [`ui`]: the only module that prints.
//!
//! Secrets live in [`azure::Sensitive`] and never reach a log, report or error.

pub mod azure;
pub mod cli;
pub mod commands;
pub mod dataplane;
pub mod inventory;
pub mod orchestrator;
pub mod settings;
pub mod ui;
