//! A backend's credentials in template mode. A backend may hold secrets in plain text: header
//! and query values, the authorization parameter and the proxy password. ARM lists them with
//! the backend, so they are read; template mode never writes them into the target. A value that
//! refers to a named value (`{{name}}`) holds no secret itself (the named value does) and is
//! copied as it is.

use serde_json::{Map, Value};

/// Replaces each literal credential of the source's backend `properties` by the target's value
/// at the same place when the target's backend has one (a real value is never replaced by a
/// placeholder), else by `placeholder`; answers the note saying so, `None` when there was none.
pub fn template_credentials(
    properties: &mut Map<String, Value>,
    target: Option<&Map<String, Value>>,
    placeholder: &str,
) -> Option<String> {
    let target = target.map(|target| Value::Object(target.clone()));
    let (mut replaced, mut kept) = (0, 0);
    replace_literals(properties, |pointer| {
        let theirs = target
            .as_ref()
            .and_then(|target| target.pointer(pointer))
            .and_then(Value::as_str);
        if let Some(theirs) = theirs {
            kept += 1;
            theirs.to_owned()
        } else {
            replaced += 1;
            placeholder.to_owned()
        }
    });
    (replaced + kept > 0).then(|| {
        format!(
            "credentials not copied (template): {kept} kept from the target, {replaced} written as a placeholder (use named values, {{{{name}}}}, to copy them by reference)"
        )
    })
}

/// `properties` with each literal credential replaced by one marker: the shape a plan's
/// fingerprint may hold (names, `{{name}}` references, the scheme; no secret, not even hashed).
pub fn without_literal_credentials(properties: &Map<String, Value>) -> Map<String, Value> {
    let mut shape = properties.clone();
    replace_literals(&mut shape, |_| "<credential>".to_owned());
    shape
}

/// Replaces each literal credential of `properties` (not a `{{name}}` reference) by what `by`
/// answers for its JSON pointer.
fn replace_literals(properties: &mut Map<String, Value>, mut by: impl FnMut(&str) -> String) {
    let mut document = Value::Object(std::mem::take(properties));
    for pointer in credential_pointers(&document) {
        let Some(Value::String(text)) = document.pointer_mut(&pointer) else {
            continue;
        };
        if !(text.contains("{{") && text.contains("}}")) {
            *text = by(&pointer);
        }
    }
    if let Value::Object(map) = document {
        *properties = map;
    }
}

/// Where `document` holds credential values (JSON pointers), in a stable order.
fn credential_pointers(document: &Value) -> Vec<String> {
    let escape = |name: &str| name.replace('~', "~0").replace('/', "~1");
    let mut pointers = Vec::new();
    for collection in ["header", "query"] {
        let Some(Value::Object(names)) = document.pointer(&format!("/credentials/{collection}"))
        else {
            continue;
        };
        for (name, values) in names {
            let count = values.as_array().map_or(0, Vec::len);
            pointers.extend(
                (0..count)
                    .map(|index| format!("/credentials/{collection}/{}/{index}", escape(name))),
            );
        }
    }
    pointers.push("/credentials/authorization/parameter".to_owned());
    pointers.push("/proxy/password".to_owned());
    pointers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn literal_credentials_become_placeholders_and_references_stay() {
        let mut source = object(json!({
            "url": "https://backend",
            "credentials": {
                "header": { "x-key": ["s3cret-header", "{{header-key}}"], "a/b~c": ["s3cret-odd"] },
                "query": { "code": ["s3cret-query"] },
                "authorization": { "scheme": "Basic", "parameter": "s3cret-auth" }
            },
            "proxy": { "url": "http://proxy", "username": "u", "password": "s3cret-proxy" }
        }));
        let note = template_credentials(&mut source, None, "PLACEHOLDER").unwrap();
        assert_eq!(
            Value::Object(source),
            json!({
                "url": "https://backend",
                "credentials": {
                    "header": { "x-key": ["PLACEHOLDER", "{{header-key}}"], "a/b~c": ["PLACEHOLDER"] },
                    "query": { "code": ["PLACEHOLDER"] },
                    "authorization": { "scheme": "Basic", "parameter": "PLACEHOLDER" }
                },
                "proxy": { "url": "http://proxy", "username": "u", "password": "PLACEHOLDER" }
            })
        );
        assert!(note.contains("0 kept from the target, 5 written as a placeholder"));
        assert!(!note.contains("s3cret"));
    }

    #[test]
    fn the_targets_values_are_kept_where_it_has_them() {
        let mut source = object(json!({
            "credentials": { "header": { "x-key": ["s3cret-a", "s3cret-b"] } }
        }));
        let target = object(json!({
            "credentials": { "header": { "x-key": ["theirs"] } }
        }));
        template_credentials(&mut source, Some(&target), "PLACEHOLDER");
        assert_eq!(
            source["credentials"]["header"]["x-key"],
            json!(["theirs", "PLACEHOLDER"])
        );
    }

    #[test]
    fn a_backend_without_credentials_is_left_alone() {
        let mut source = object(json!({ "url": "https://backend", "protocol": "http" }));
        assert_eq!(template_credentials(&mut source, None, "PLACEHOLDER"), None);
        assert_eq!(source["url"], "https://backend");
    }
}
