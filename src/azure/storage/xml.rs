//! The little XML the storage services speak: reading listings, ACLs and errors (roxmltree, one
//! page at a time), and writing the few request bodies atg sends.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use roxmltree::{Document, Node};

/// The text of the first child element named `name`.
pub(super) fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .and_then(|c| c.text())
}

pub(super) fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

pub(super) fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// A `<Name>` that may be `Encoded="true"` (percent-encoded because it holds characters XML
/// cannot carry).
pub(super) fn name_of(node: Node<'_, '_>) -> Option<String> {
    let name = child(node, "Name")?;
    let text = name.text().unwrap_or_default();
    if name.attribute("Encoded") == Some("true") {
        Some(
            url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        )
    } else {
        Some(text.to_owned())
    }
}

/// `<Metadata><key>value</key>...</Metadata>` as a map, names in the case the service keeps
/// (and shows): a copy must carry `Author`, not `author`.
pub(super) fn metadata(node: Node<'_, '_>) -> BTreeMap<String, String> {
    child(node, "Metadata")
        .map(|m| {
            m.children()
                .filter(Node::is_element)
                .map(|e| {
                    (
                        e.tag_name().name().to_owned(),
                        e.text().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn parse(body: &[u8]) -> Result<Document<'_>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
    let text = text.trim_start_matches('\u{feff}');
    Document::parse(text).map_err(|e| format!("the answer is not XML: {e}"))
}

/// `<Error><Code>..</Code><Message>..</Message></Error>`.
#[allow(clippy::type_complexity)]
pub(super) fn error_code_and_message(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let document = parse(body).ok()?;
    let root = document.root_element();
    if root.tag_name().name() != "Error" {
        return None;
    }
    Some((
        child_text(root, "Code").map(str::to_owned),
        child_text(root, "Message").map(str::to_owned),
    ))
}

/// A stored access policy (`<SignedIdentifier>`), shared by containers, queues and tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedIdentifier {
    pub id: String,
    pub start: Option<String>,
    pub expiry: Option<String>,
    pub permission: Option<String>,
}

pub(super) fn signed_identifiers(body: &[u8]) -> Result<Vec<SignedIdentifier>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let document = parse(body)?;
    let root = document.root_element();
    Ok(children(root, "SignedIdentifier")
        .map(|identifier| {
            let policy = child(identifier, "AccessPolicy");
            let field = |name: &str| {
                policy
                    .and_then(|p| child_text(p, name))
                    .map(str::to_owned)
                    .filter(|v| !v.is_empty())
            };
            SignedIdentifier {
                id: child_text(identifier, "Id").unwrap_or_default().to_owned(),
                start: field("Start"),
                expiry: field("Expiry"),
                permission: field("Permission"),
            }
        })
        .collect())
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(ch),
        }
    }
    out
}

pub(super) fn signed_identifiers_body(identifiers: &[SignedIdentifier]) -> Vec<u8> {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers>");
    for identifier in identifiers {
        body.push_str("<SignedIdentifier><Id>");
        body.push_str(&escape(&identifier.id));
        body.push_str("</Id><AccessPolicy>");
        for (name, value) in [
            ("Start", &identifier.start),
            ("Expiry", &identifier.expiry),
            ("Permission", &identifier.permission),
        ] {
            if let Some(value) = value {
                let _ = write!(body, "<{name}>{}</{name}>", escape(value));
            }
        }
        body.push_str("</AccessPolicy></SignedIdentifier>");
    }
    body.push_str("</SignedIdentifiers>");
    body.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_policies_round_trip() {
        let identifiers = vec![SignedIdentifier {
            id: "read-policy".into(),
            start: Some("2024-01-01T00:00:00.0000000Z".into()),
            expiry: Some("2030-01-01T00:00:00.0000000Z".into()),
            permission: Some("rl".into()),
        }];
        let body = signed_identifiers_body(&identifiers);
        assert_eq!(signed_identifiers(&body).unwrap(), identifiers);
        assert!(signed_identifiers(b"").unwrap().is_empty());
    }

    #[test]
    fn errors_and_encoded_names_are_read() {
        let body = b"\xef\xbb\xbf<?xml version=\"1.0\"?><Error><Code>BlobArchived</Code><Message>This operation is not permitted on an archived blob.\nRequestId:x</Message></Error>";
        let (code, message) = error_code_and_message(body).unwrap();
        assert_eq!(code.as_deref(), Some("BlobArchived"));
        assert!(message.unwrap().starts_with("This operation"));
        let document =
            Document::parse("<Blob><Name Encoded=\"true\">a%20b%2Bc</Name></Blob>").unwrap();
        assert_eq!(name_of(document.root_element()).as_deref(), Some("a b+c"));
    }
}
