//! The gateway's request classification and rewriting.

use super::*;
use hyper::Method;

#[test]
fn production_hosts_map_to_path_style() {
    assert_eq!(
        split_host("src.blob.core.windows.net"),
        Some(("src", "blob"))
    );
    assert_eq!(
        split_host("src.table.core.windows.net:443"),
        Some(("src", "table"))
    );
    assert_eq!(split_host("example.com"), None);
    let write = |service, method, uri: &str, comp, copy| {
        operation(service, &method, &uri.parse().unwrap(), comp, copy)
    };
    assert_eq!(
        write("queue", Method::POST, "/q/messages", None, false).as_deref(),
        Some("message")
    );
    assert_eq!(
        write("table", Method::POST, "/$batch", None, false).as_deref(),
        Some("batch")
    );
    assert_eq!(
        write("table", Method::POST, "/Tables", None, false).as_deref(),
        Some("table")
    );
    assert_eq!(
        write("blob", Method::PUT, "/c?restype=container", None, false).as_deref(),
        Some("container")
    );
    assert_eq!(
        write("blob", Method::PUT, "/c/b", None, true).as_deref(),
        Some("copy")
    );
    assert_eq!(
        write(
            "blob",
            Method::PUT,
            "/c/b?comp=metadata",
            Some("metadata"),
            false
        )
        .as_deref(),
        Some("metadata")
    );
    assert_eq!(write("blob", Method::GET, "/c/b", None, false), None);
    let blob: SocketAddr = "127.0.0.1:10000".parse().unwrap();
    assert_eq!(
        path_style("https://src.blob.core.windows.net/c/a%20b?sv=1&sig=x", blob).as_deref(),
        Some("https://127.0.0.1:10000/src/c/a%20b?sv=1&sig=x")
    );
}
