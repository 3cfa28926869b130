//! Policy XML compared as the service means it: the service re-formats what it stores (CRLF,
//! tab indentation), so two policies are the same when they differ only in the whitespace
//! between tags and in line breaks with their indentation. Spaces within a line are content
//! (`"a  b"` in an expression is not `"a b"`).

/// `xml` without the whitespace the service rewrites.
pub fn normalized(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut gap = String::new();
    let mut after_tag = false;
    for c in xml.trim().chars() {
        if c.is_whitespace() {
            gap.push(c);
            continue;
        }
        // Whitespace between a `>` and a `<` is layout, and so is a line break with the
        // indentation around it; anything else is content, kept as it is.
        if !(gap.is_empty() || after_tag && c == '<') {
            if gap.contains(['\n', '\r']) {
                out.push('\n');
            } else {
                out.push_str(&gap);
            }
        }
        gap.clear();
        out.push(c);
        after_tag = c == '>';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_reformatting_is_no_difference_but_content_is() {
        let sent = "<policies>\n        <inbound></inbound>\n        <backend>\n                <!-- test -->\n        </backend>\n        <outbound />\n</policies>";
        let stored = "<policies>\r\n\t<inbound></inbound>\r\n\t<backend>\r\n\t\t<!-- test -->\r\n\t</backend>\r\n\t<outbound />\r\n</policies>";
        assert_eq!(normalized(sent), normalized(stored));
        assert_ne!(
            normalized("<set-header name=\"a\">x y</set-header>"),
            normalized("<set-header name=\"a\">x  z</set-header>")
        );
        // Spaces within a line are content; a line break re-indented is not.
        assert_ne!(
            normalized("<set-body>@(\"a  b\")</set-body>"),
            normalized("<set-body>@(\"a b\")</set-body>")
        );
        assert_eq!(
            normalized("<set-body>@{\n    return 1;\n}</set-body>"),
            normalized("<set-body>@{\r\n\t\treturn 1;\r\n\t}</set-body>")
        );
    }
}
