//! The emulated ARM over HTTPS: the generic resource store (etags, PATCH, children, collections,
//! both long-running styles) and the provider modules' quirks.

mod faults;
mod service_bus;
mod store;
mod web;

use atg_testkit::kv_rest::test_http_client;
use atg_testkit::{mint_token, Emulator, EmulatorOptions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const GROUP: &str = "https://management.azure.com/subscriptions/sub1/resourceGroups/rg1";
const API: &str = "api-version=2024-01-01";

struct Arm {
    emulator: Emulator,
    http: reqwest::Client,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

impl Arm {
    async fn start() -> Arm {
        let emulator = Emulator::start(EmulatorOptions::default())
            .await
            .expect("start emulator");
        let http = test_http_client(
            emulator.ca_pem(),
            emulator.addr(),
            &["management.azure.com"],
        )
        .expect("client");
        let token = mint_token("t", "c", "https://management.azure.com");
        Arm {
            emulator,
            http,
            token,
        }
    }

    /// `path` is relative to the resource group unless it starts with `https://`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if path.starts_with("https://") {
            path.to_owned()
        } else {
            let separator = if path.contains('?') { '&' } else { '?' };
            format!("{GROUP}{path}{separator}{API}")
        };
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}
