//! Long-running ARM operations, as `azure_core`'s poller reads them: the `Azure-AsyncOperation`
//! status first, then `Location` (202 while running), then the resource's own
//! `provisioningState`. Each call polls until its own deadline.
//!
//! What a finished operation answers: a PUT or PATCH the resource (GET again); a DELETE nothing;
//! a POST its result, from `Location` when the first answer named one, else the status
//! document's `properties` (SQL export's `importExportOperationResults`), else nothing.

use std::time::Duration;

use azure_core::http::Method;
use serde_json::Value;

use super::{ArmClient, ArmResponse, CallOptions};
use crate::azure::error::{AzureError, AzureErrorKind};

impl ArmClient {
    /// [`Self::call_and_wait`] with the call's own headers (on the first request only), read
    /// declaration and deadline.
    pub async fn call_and_wait_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        options: &CallOptions,
    ) -> Result<Value, AzureError> {
        let first = self.call_with(method, path, body, options).await?;
        // Finished: no operation header and no provisioning state still running (a 201 without
        // either is a synchronous create, as API Management's entities and links answer; some
        // of those, product links, have no GET to poll).
        let operation = first.azure_async_operation.is_some() || first.location.is_some();
        if !(first.status == 202 || (first.status == 201 && operation) || is_running(&first.body)) {
            return Ok(first.body);
        }
        let deadline =
            tokio::time::Instant::now() + options.deadline.unwrap_or(self.operation_timeout);
        // An operation URL off the ARM host is refused by the pipeline's endpoint policy.
        if let Some(status_url) = first.azure_async_operation.clone() {
            let status = self.wait_for_status(&status_url, &first, deadline).await?;
            return match method {
                Method::Delete => Ok(Value::Null),
                Method::Post => match first.location.as_deref() {
                    Some(location) => self.get(location).await,
                    None => Ok(status.get("properties").cloned().unwrap_or(Value::Null)),
                },
                _ => self.get(path).await,
            };
        }
        let mut wait = next_wait(first.retry_after, Duration::from_millis(500));
        if let Some(location) = first.location.clone() {
            loop {
                sleep_until_due(wait, deadline).await?;
                let poll = self.call(Method::Get, &location, None).await?;
                if poll.status != 202 {
                    return Ok(poll.body);
                }
                wait = next_wait(poll.retry_after, wait);
            }
        }
        // 201 with a non-terminal provisioningState and no header: poll the resource itself.
        loop {
            sleep_until_due(wait, deadline).await?;
            let resource = self.get(path).await?;
            if !is_running(&resource) {
                return match provisioning_state(&resource) {
                    Some(state) if state.eq_ignore_ascii_case("failed") => {
                        Err(operation_error(&resource, state))
                    }
                    _ => Ok(resource),
                };
            }
            wait = next_wait(None, wait);
        }
    }

    /// Polls an `Azure-AsyncOperation` URL until `Succeeded`; its last status document.
    async fn wait_for_status(
        &self,
        status_url: &str,
        first: &ArmResponse,
        deadline: tokio::time::Instant,
    ) -> Result<Value, AzureError> {
        let mut wait = next_wait(first.retry_after, Duration::from_millis(500));
        loop {
            sleep_until_due(wait, deadline).await?;
            let poll = self.call(Method::Get, status_url, None).await?;
            let status = poll
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("");
            match status.to_ascii_lowercase().as_str() {
                "succeeded" => return Ok(poll.body),
                "failed" | "canceled" | "cancelled" => {
                    return Err(operation_error(&poll.body, status));
                }
                _ => {}
            }
            wait = next_wait(poll.retry_after, wait);
        }
    }
}

/// Sleeps `wait`, cut short by the deadline (the last poll is at the deadline); fails once the
/// deadline has passed, so no poll is sent after it.
async fn sleep_until_due(wait: Duration, deadline: tokio::time::Instant) -> Result<(), AzureError> {
    let now = tokio::time::Instant::now();
    if now >= deadline {
        return Err(AzureError::new(
            AzureErrorKind::Other,
            "long-running operation timed out",
        ));
    }
    tokio::time::sleep_until(deadline.min(now + wait)).await;
    Ok(())
}

/// The next polling interval: the server's Retry-After when given, else double the last one,
/// always between 1 s and 30 s.
fn next_wait(retry_after: Option<Duration>, last: Duration) -> Duration {
    retry_after
        .unwrap_or_else(|| last.saturating_mul(2))
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
}

fn is_running(body: &Value) -> bool {
    provisioning_state(body).is_some_and(|state| {
        !["succeeded", "failed", "canceled"].contains(&state.to_ascii_lowercase().as_str())
    })
}

fn operation_error(body: &Value, status: &str) -> AzureError {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut error = AzureError::from_response(200, None, &bytes);
    error.status = None;
    if error.code.is_none() {
        error.message = format!("long-running operation ended {status}");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_waits_stay_between_one_and_thirty_seconds() {
        assert_eq!(
            next_wait(Some(Duration::ZERO), Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_wait(None, Duration::from_secs(4)),
            Duration::from_secs(8)
        );
        assert_eq!(
            next_wait(None, Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(next_wait(None, Duration::MAX), Duration::from_secs(30));
    }

    #[test]
    fn provisioning_states_decide_whether_to_poll() {
        assert!(is_running(
            &serde_json::json!({"properties":{"provisioningState":"Creating"}})
        ));
        assert!(!is_running(
            &serde_json::json!({"properties":{"provisioningState":"Succeeded"}})
        ));
        assert!(!is_running(&serde_json::json!({"properties":{}})));
    }
}
