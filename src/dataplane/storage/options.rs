//! The storage plugin's per-pair options (the inventory's `options` of a target), typed and
//! checked through [`kit::options`](crate::dataplane::kit::options) before any request; the run
//! uses the same parse.

use std::time::Duration;

use serde::Deserialize;

use super::MIB;
use crate::azure::Sensitive;
use crate::dataplane::kit::options::{choice, parse, text, whole_number};
use crate::inventory::Resource;

/// Largest blob Copy Blob From URL takes.
pub(super) const SYNC_COPY_MAX: u64 = 256 * MIB;

/// How long an async Copy Blob is waited for unless the pair says otherwise: a day, since the
/// service copies a large page blob across regions for hours.
const COPY_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Per-pair knobs from the inventory's `options`, resolved: what the plugin works with.
#[derive(Debug)]
pub(super) struct StorageOptions {
    pub connection_string: Option<(Sensitive, String)>,
    /// The target's connection string: its account key signs what only Shared Key may do
    /// (stored access policies).
    pub target_connection_string: Option<(Sensitive, String)>,
    pub source_auth: SourceAuthChoice,
    pub sync_copy_max: u64,
    pub block_size: Option<u64>,
    /// `queue_messages: "peek"`: copy the (at most 32) messages Peek Messages shows.
    pub copy_queue_messages: bool,
    /// How long an async Copy Blob is polled before the blob is reported failed.
    pub copy_timeout: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum SourceAuthChoice {
    #[default]
    Auto,
    Entra,
    AccountKey,
}

/// The inventory's `options` of a storage pair as written: every key known, every value in
/// range. Each field reads through a kit helper that names the key in its message, never the
/// value (a misplaced secret is not echoed).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageOptionsInput {
    #[serde(default, deserialize_with = "source_connection_string")]
    source_connection_string: Option<Sensitive>,
    #[serde(default, deserialize_with = "source_connection_string_env")]
    source_connection_string_env: Option<String>,
    #[serde(default, deserialize_with = "target_connection_string")]
    target_connection_string: Option<Sensitive>,
    #[serde(default, deserialize_with = "target_connection_string_env")]
    target_connection_string_env: Option<String>,
    #[serde(default, deserialize_with = "source_auth")]
    source_auth: Option<SourceAuthChoice>,
    #[serde(default, deserialize_with = "sync_copy_max_mib")]
    sync_copy_max_mib: Option<u64>,
    #[serde(default, deserialize_with = "block_size_mib")]
    block_size_mib: Option<u64>,
    #[serde(default, deserialize_with = "queue_messages")]
    queue_messages: Option<bool>,
    #[serde(default, deserialize_with = "copy_timeout_secs")]
    copy_timeout_secs: Option<u64>,
}

fn source_connection_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Sensitive>, D::Error> {
    Ok(text(deserializer, "source_connection_string")?.map(Sensitive::new))
}

fn source_connection_string_env<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text(deserializer, "source_connection_string_env")
}

fn target_connection_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Sensitive>, D::Error> {
    Ok(text(deserializer, "target_connection_string")?.map(Sensitive::new))
}

fn target_connection_string_env<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text(deserializer, "target_connection_string_env")
}

fn source_auth<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SourceAuthChoice>, D::Error> {
    choice(
        deserializer,
        "source_auth",
        &[
            ("auto", SourceAuthChoice::Auto),
            ("entra", SourceAuthChoice::Entra),
            ("account-key", SourceAuthChoice::AccountKey),
        ],
    )
}

fn sync_copy_max_mib<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Ok(whole_number(deserializer, "sync_copy_max_mib", 1, 256)?.map(|n| n * MIB))
}

fn block_size_mib<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Ok(whole_number(deserializer, "block_size_mib", 1, 4000)?.map(|n| n * MIB))
}

fn queue_messages<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    choice(
        deserializer,
        "queue_messages",
        &[("none", false), ("peek", true)],
    )
}

/// Seconds, up to a week.
fn copy_timeout_secs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    whole_number(deserializer, "copy_timeout_secs", 1, 7 * 24 * 60 * 60)
}

impl StorageOptions {
    pub(super) fn parse(resource: &Resource) -> Result<Self, String> {
        let input: StorageOptionsInput = parse(&resource.options)?;
        let connection_string = |value: Option<Sensitive>,
                                 key: &'static str,
                                 variable: Option<String>,
                                 env_key: &'static str| {
            if let Some(value) = value {
                return Ok(Some((value, format!("options.{key}"))));
            }
            if let Some(variable) = variable {
                let value = std::env::var(&variable).map_err(|_| {
                    format!(
                        "options.{env_key} names `{}`, which is not set",
                        crate::inventory::escape_controls(&variable)
                    )
                })?;
                return Ok(Some((Sensitive::new(value), format!("options.{env_key}"))));
            }
            Ok::<_, String>(None)
        };
        Ok(StorageOptions {
            connection_string: connection_string(
                input.source_connection_string,
                "source_connection_string",
                input.source_connection_string_env,
                "source_connection_string_env",
            )?,
            target_connection_string: connection_string(
                input.target_connection_string,
                "target_connection_string",
                input.target_connection_string_env,
                "target_connection_string_env",
            )?,
            source_auth: input.source_auth.unwrap_or_default(),
            sync_copy_max: input.sync_copy_max_mib.unwrap_or(SYNC_COPY_MAX),
            block_size: input.block_size_mib,
            copy_queue_messages: input.queue_messages.unwrap_or(false),
            copy_timeout: input
                .copy_timeout_secs
                .map_or(COPY_TIMEOUT, Duration::from_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Properties;

    #[test]
    fn options_are_validated() {
        let mut resource = Resource {
            id: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a"
                .into(),
            resource_type: "Microsoft.Storage/storageAccounts".into(),
            name: "a".into(),
            subscription_id: None,
            resource_group: None,
            properties: Properties::Missing,
            options: serde_json::Map::new(),
        };
        let parsed = StorageOptions::parse(&resource).unwrap();
        assert_eq!(parsed.sync_copy_max, SYNC_COPY_MAX);
        assert_eq!(parsed.source_auth, SourceAuthChoice::Auto);
        assert_eq!(parsed.copy_timeout, COPY_TIMEOUT);
        resource
            .options
            .insert("sync_copy_max_mib".into(), 999.into());
        assert!(StorageOptions::parse(&resource)
            .unwrap_err()
            .contains("1 to 256"));
        resource.options.clear();
        resource
            .options
            .insert("source_auth".into(), "magic".into());
        assert_eq!(
            StorageOptions::parse(&resource).unwrap_err(),
            "options.source_auth must be auto, entra or account-key"
        );
        for (options, expected) in [
            (
                serde_json::json!({ "blok_size_mib": 8 }),
                "options: unknown field `blok_size_mib`",
            ),
            (
                serde_json::json!({ "block_size_mib": 1e20 }),
                "options.block_size_mib must be a whole number from 1 to 4000",
            ),
            (
                serde_json::json!({ "queue_messages": "all" }),
                "options.queue_messages must be none or peek",
            ),
            (
                serde_json::json!({ "copy_timeout_secs": 0 }),
                "options.copy_timeout_secs must be a whole number from 1 to 604800",
            ),
            // A secret in the wrong field is never echoed.
            (
                serde_json::json!({ "sync_copy_max_mib": "AccountKey=c2VjcmV0" }),
                "options.sync_copy_max_mib must be a whole number from 1 to 256",
            ),
        ] {
            resource.options = options.as_object().cloned().unwrap();
            let message = StorageOptions::parse(&resource).unwrap_err();
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("c2VjcmV0"), "{message}");
        }
        resource.options = serde_json::json!({
            "block_size_mib": 8, "queue_messages": "peek", "copy_timeout_secs": 90
        })
        .as_object()
        .cloned()
        .unwrap();
        let parsed = StorageOptions::parse(&resource).unwrap();
        assert_eq!(parsed.block_size, Some(8 * MIB));
        assert!(parsed.copy_queue_messages);
        assert_eq!(parsed.copy_timeout, Duration::from_secs(90));
    }
}
