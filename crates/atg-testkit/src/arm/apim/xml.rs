//! The service's re-formatting of policy XML: one element a line, indented with tabs by depth,
//! lines joined with CRLF (as recorded in `test_apim_api_policy.yaml`). Only whitespace between
//! tags changes; an element opened and closed on one line stays there.

/// `text` as the service stores it.
pub(crate) fn reformat(text: &str) -> String {
    let mut lines = Vec::new();
    let mut depth = 0usize;
    for line in split_between_tags(text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("</") {
            depth = depth.saturating_sub(1);
        }
        lines.push(format!("{}{line}", "\t".repeat(depth)));
        let opens = line.starts_with('<')
            && !line.starts_with("</")
            && !line.starts_with("<!--")
            && !line.starts_with("<?")
            && !line.ends_with("/>")
            && !line.contains("</");
        if opens {
            depth += 1;
        }
    }
    lines.join("\r\n")
}

/// The text cut wherever whitespace separates a `>` from the next `<`.
fn split_between_tags(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if c == '>' {
            let mut gap = String::new();
            while let Some(next) = chars.peek().copied().filter(|n| n.is_whitespace()) {
                gap.push(next);
                chars.next();
            }
            if !gap.is_empty() && chars.peek() == Some(&'<') {
                parts.push(std::mem::take(&mut current));
            } else {
                current.push_str(&gap);
            }
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_reformatted_as_recorded() {
        let sent = "<policies>\n        <inbound></inbound>\n        <backend>\n                <!-- test -->\n        </backend>\n        <outbound />\n        <on-error />\n</policies>";
        assert_eq!(
            reformat(sent),
            "<policies>\r\n\t<inbound></inbound>\r\n\t<backend>\r\n\t\t<!-- test -->\r\n\t</backend>\r\n\t<outbound />\r\n\t<on-error />\r\n</policies>"
        );
        assert_eq!(reformat(&reformat(sent)), reformat(sent));
    }
}
