//! The plugin kit: the machinery every plugin is built from, so that a plugin holds only what
//! its service needs.
//!
//! - [`conflict`]: one decision for `--on-conflict` ([`Decision`]).
//! - [`listing`]: pairing the source's and the target's listings, in memory or page by page.
//! - [`poll`]: waiting for a service state with a deadline, a backoff and cancellation.
//! - [`options`]: typed per-pair options, checked before any request.
//! - [`apply`]: the per-item apply loop ([`apply_each`]) and typed plan items ([`Typed`]).
//! - [`fingerprint`]: plan fingerprints of items that carry no version (digests of compared shapes).
//! - [`pairs`]: references to another resource of the run, pointed at its target ([`Paired`]).

pub mod apply;
pub mod conflict;
pub mod fingerprint;
pub mod listing;
pub mod options;
pub mod pairs;
pub mod poll;

pub use apply::{apply_each, in_slot, settled, Typed};
pub use conflict::{Decision, Existing, Newer};
pub use listing::{merge_sorted, paged, pair_by_key, MergeError, Merged};
pub use pairs::Paired;
pub use poll::{poll_until, PollError, Progress, Schedule};
