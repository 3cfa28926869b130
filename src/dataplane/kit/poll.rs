//! Waiting for a service to reach a state: one helper with a deadline, a backoff and
//! cancellation, for every wait loop (a recovery settling, a purge, a server-side copy).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What one look at the service found.
#[derive(Debug)]
pub enum Progress<T> {
    /// Reached: the wait is over.
    Done(T),
    /// Not yet; look again after `retry_after` when the service said so, else after the backoff.
    Pending { retry_after: Option<Duration> },
}

/// How long and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Give up after this long.
    pub deadline: Duration,
    /// The first pause; doubled after each look, up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Schedule {
    pub const fn new(deadline: Duration) -> Self {
        Schedule {
            deadline,
            first_pause: Duration::from_millis(250),
            max_pause: Duration::from_secs(5),
        }
    }

    #[must_use]
    pub const fn pauses(mut self, first: Duration, max: Duration) -> Self {
        self.first_pause = first;
        self.max_pause = max;
        self
    }
}

/// Why a wait ended without its state.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PollError<E> {
    /// A look failed.
    #[error("{0}")]
    Failed(#[source] E),
    /// Still pending at the deadline.
    #[error("still not done after {}s", .0.as_secs())]
    TimedOut(Duration),
    /// The run was cancelled while waiting.
    #[error("cancelled while waiting")]
    Cancelled,
}

/// Looks with `check` until it is done, fails, the deadline passes or `cancel` fires. The first
/// look is immediate. A `retry_after` longer than the time left still ends at the deadline.
pub async fn poll_until<T, E, F, Fut>(
    cancel: &CancellationToken,
    schedule: Schedule,
    mut check: F,
) -> Result<T, PollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress<T>, E>>,
{
    let deadline = Instant::now() + schedule.deadline;
    let mut pause = schedule.first_pause;
    loop {
        let retry_after = match check().await.map_err(PollError::Failed)? {
            Progress::Done(value) => return Ok(value),
            Progress::Pending { retry_after } => retry_after,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(PollError::TimedOut(schedule.deadline));
        }
        let wait = retry_after.unwrap_or(pause).min(deadline - now);
        pause = (pause * 2).min(schedule.max_pause);
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(PollError::Cancelled),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(deadline_ms: u64) -> Schedule {
        Schedule::new(Duration::from_millis(deadline_ms))
            .pauses(Duration::from_millis(1), Duration::from_millis(4))
    }

    #[tokio::test]
    async fn looks_until_done() {
        let mut looks = 0;
        let done = poll_until(&CancellationToken::new(), fast(5_000), || {
            looks += 1;
            let now = looks;
            async move {
                Ok::<_, String>(if now < 3 {
                    Progress::Pending { retry_after: None }
                } else {
                    Progress::Done(now)
                })
            }
        })
        .await;
        assert_eq!(done, Ok(3));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_even_when_told_to_wait_longer() {
        let started = std::time::Instant::now();
        let done = poll_until(&CancellationToken::new(), fast(50), || async {
            Ok::<Progress<()>, String>(Progress::Pending {
                retry_after: Some(Duration::from_secs(3600)),
            })
        })
        .await;
        assert_eq!(done, Err(PollError::TimedOut(Duration::from_millis(50))));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_failed_look_or_a_cancellation_ends_the_wait() {
        let failed = poll_until(&CancellationToken::new(), fast(5_000), || async {
            Err::<Progress<()>, _>("gone")
        })
        .await;
        assert_eq!(failed, Err(PollError::Failed("gone")));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let cancelled = poll_until(&cancel, fast(60_000), || async {
            Ok::<Progress<()>, String>(Progress::Pending { retry_after: None })
        })
        .await;
        assert_eq!(cancelled, Err(PollError::Cancelled));
    }
}
