//! A scripted transport for the ARM client's unit tests: answers in order, records what was
//! sent. Only the transport is fake; atg's policies (write guard, endpoint, retries) and the
//! bearer policy run as in production.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Request, StatusCode, Transport, Url};

use super::ArmClient;
use crate::azure::policies::WriteAccess;
use crate::azure::{AzureHttp, HttpSettings};

/// One request as the transport saw it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One scripted answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static str,
}

pub fn answer(status: u16, headers: &[(&'static str, &str)], body: &'static str) -> Answer {
    Answer {
        status,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body,
    }
}

#[derive(Debug, Default)]
pub struct FakeArm {
    answers: Mutex<VecDeque<Answer>>,
    pub sent: Mutex<Vec<Sent>>,
}

impl FakeArm {
    pub fn new(answers: Vec<Answer>) -> Arc<Self> {
        Arc::new(FakeArm {
            answers: Mutex::new(answers.into()),
            sent: Mutex::default(),
        })
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// An ARM client of `access` whose transport is this fake.
    pub fn client(self: &Arc<Self>, access: WriteAccess) -> ArmClient {
        let http = AzureHttp::new(&HttpSettings::default()).unwrap();
        let endpoint = Url::parse(http.cloud.resource_manager()).unwrap();
        let mut options = http.client_options(&endpoint, access);
        options.transport = Some(Transport::new(self.clone()));
        ArmClient::with_options(
            endpoint,
            options,
            Arc::new(StaticToken),
            &http.cloud.resource_manager_scope(),
        )
    }
}

#[async_trait]
impl HttpClient for FakeArm {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.sent.lock().unwrap().push(Sent {
            method: request.method().to_string(),
            url: request.url().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned()))
                .collect(),
        });
        let Answer {
            status,
            headers,
            body,
        } = self.answers.lock().unwrap().pop_front().unwrap_or(Answer {
            status: 500,
            headers: Vec::new(),
            body: r#"{"error":{"code":"Unscripted","message":"no answer scripted"}}"#,
        });
        let mut out = Headers::new();
        out.insert("content-type", "application/json");
        for (name, value) in headers {
            out.insert(HeaderName::from_static(name), value);
        }
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(status),
            out,
            body.as_bytes().to_vec(),
        ))
    }
}

#[derive(Debug)]
struct StaticToken;

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "fake-token",
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}
