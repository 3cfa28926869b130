//! Per-pair options (the inventory's `options` of a target): typed, every key known, every
//! value checked, before any request.
//!
//! A plugin declares a `#[serde(deny_unknown_fields)]` struct whose fields read through the
//! helpers here (`#[serde(default, deserialize_with = "...")]`), and parses it with [`parse`]
//! both in `validate_options` and when planning, so a run uses exactly what was checked. The
//! helpers' messages name the key and what it takes, never the value (which may be a secret
//! put in the wrong place): serde's own messages name neither.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Parses a pair's `options` into the plugin's typed options.
pub fn parse<T: DeserializeOwned>(options: &Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(options.clone())).map_err(|error| {
        // serde's message for an unknown key ("unknown field `x`, expected one of ...") comes
        // without the `options.` the helpers' messages carry.
        let message = error.to_string();
        if message.starts_with("options.") {
            message
        } else {
            format!("options: {}", crate::inventory::escape_controls(&message))
        }
    })
}

/// One option: absent or null is `None`; otherwise `read` must accept it, or the error says
/// `options.<key> <expected>`.
pub fn option<'de, D, T>(
    deserializer: D,
    key: &str,
    expected: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(&value).map(Some).ok_or_else(|| {
            <D::Error as serde::de::Error>::custom(format!("options.{key} {expected}"))
        }),
    }
}

/// A string option.
pub fn text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    key: &str,
) -> Result<Option<String>, D::Error> {
    option(deserializer, key, "must be a string", |value| {
        value.as_str().map(str::to_owned)
    })
}

/// A whole number in `min..=max`.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, D::Error> {
    option(
        deserializer,
        key,
        &format!("must be a whole number from {min} to {max}"),
        |value| value.as_u64().filter(|n| (min..=max).contains(n)),
    )
}

/// One of fixed words, e.g. `auto`, `entra`, `account-key`.
pub fn choice<'de, D, T: Copy>(
    deserializer: D,
    key: &str,
    choices: &[(&str, T)],
) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
    let expected = match words.split_last() {
        Some((last, [])) => format!("must be {last}"),
        Some((last, rest)) => format!("must be {} or {last}", rest.join(", ")),
        None => "takes no value".to_owned(),
    };
    option(deserializer, key, &expected, |value| {
        let word = value.as_str()?;
        choices
            .iter()
            .find(|(choice, _)| *choice == word)
            .map(|(_, chosen)| *chosen)
    })
}

/// A list of non-empty strings (names).
pub fn names<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    key: &str,
) -> Result<Option<Vec<String>>, D::Error> {
    option(
        deserializer,
        key,
        "must be a list of non-empty strings",
        |value| {
            value
                .as_array()?
                .iter()
                .map(|name| {
                    name.as_str()
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                })
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Options {
        #[serde(default, deserialize_with = "mode")]
        mode: Option<bool>,
        #[serde(default, deserialize_with = "size")]
        size: Option<u64>,
        #[serde(default, deserialize_with = "keep")]
        keep: Option<Vec<String>>,
    }

    fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        choice(d, "mode", &[("none", false), ("peek", true)])
    }

    fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        whole_number(d, "size", 1, 256)
    }

    fn keep<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        names(d, "keep")
    }

    fn options(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn options_are_typed_and_each_refusal_names_the_key_never_the_value() {
        let parsed: Options = parse(&options(serde_json::json!({
            "mode": "peek", "size": 8, "keep": ["A"]
        })))
        .unwrap();
        assert_eq!(
            parsed,
            Options {
                mode: Some(true),
                size: Some(8),
                keep: Some(vec!["A".into()])
            }
        );
        let refused = |value| parse::<Options>(&options(value)).unwrap_err();
        assert_eq!(
            refused(serde_json::json!({ "mode": "s3cr3t" })),
            "options.mode must be none or peek"
        );
        assert_eq!(
            refused(serde_json::json!({ "size": 0 })),
            "options.size must be a whole number from 1 to 256"
        );
        assert_eq!(
            refused(serde_json::json!({ "keep": ["", "x"] })),
            "options.keep must be a list of non-empty strings"
        );
        let unknown = refused(serde_json::json!({ "colour": "red" }));
        assert!(
            unknown.starts_with("options: unknown field `colour`"),
            "{unknown}"
        );
        assert!(!refused(serde_json::json!({ "mode": "s3cr3t" })).contains("s3cr3t"));
    }
}
