//! Queue messages, copied only when the pair opts in (`options.queue_messages = "peek"`): the
//! messages Peek Messages shows (at most 32), never dequeued from the source, each put once
//! even when answers are lost.

use std::collections::HashMap;

use super::access::Clients;
use crate::azure::{AzureError, Sensitive};
use crate::dataplane::ItemStatus;

/// The most messages Peek Messages shows.
pub(super) const PEEK_MAX: usize = 32;

const PEEK_LIMIT: &str = "Peek Messages shows at most 32 messages: any beyond them were not copied (reading them would dequeue, which changes the source)";

/// What copying one queue's messages did, and what it could not be sure of.
#[derive(Debug, Default)]
pub(super) struct MessageCopy {
    copied: u64,
    /// Source messages the target already holds.
    present: u64,
    /// The source showed a full peek window: it may hold more.
    more_in_source: bool,
    /// Source messages not found among the (full) window of the target: they may be beyond it,
    /// so they were not sent.
    not_compared: u64,
    /// Messages whose Put Message answer was lost where the target holds more than a peek
    /// shows: not sent again, so each is there once or not at all.
    unconfirmed: u64,
}

impl MessageCopy {
    pub(super) fn note(&self) -> String {
        format!(
            "messages: {} copied, {} already in the target (peeked, the source is never dequeued)",
            self.copied, self.present
        )
    }

    /// Why the queue's messages may not all be in the target.
    fn risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        if self.more_in_source {
            risks.push(PEEK_LIMIT.to_owned());
        }
        if self.not_compared > 0 {
            risks.push(format!(
                "{} source message(s) not copied: the target holds more messages than Peek Messages shows (32), so whether they are already there cannot be seen",
                self.not_compared
            ));
        }
        if self.unconfirmed > 0 {
            risks.push(format!(
                "{} message(s) may be missing: their Put Message answer was lost and, with more than 32 messages in the target, Peek Messages cannot show whether they landed (not sent again, which could duplicate them)",
                self.unconfirmed
            ));
        }
        risks
    }
}

/// The queue's status once its messages are copied.
pub(super) fn with_messages(status: ItemStatus, copy: &MessageCopy) -> ItemStatus {
    let mut reasons = copy.risks();
    if copy.copied == 0 && reasons.is_empty() {
        return status;
    }
    // Messages copied into a queue that was there already overwrite it.
    let existed = !matches!(status, ItemStatus::Created { .. });
    let action = match status {
        ItemStatus::Created { action } | ItemStatus::Overwritten { action } => Some(action),
        ItemStatus::Partial { action, reason } => {
            reasons.insert(0, reason);
            Some(action)
        }
        _ => None,
    };
    let action = match (action, copy.copied) {
        (Some(action), 0) => action,
        (Some(action), copied) => format!("{action}; {copied} message(s) copied"),
        (None, 0) if copy.not_compared + copy.unconfirmed == 0 => {
            "queue kept; its peeked messages are already in the target".into()
        }
        (None, 0) => "queue kept".into(),
        (None, copied) => format!("{copied} message(s) copied"),
    };
    if reasons.is_empty() {
        ItemStatus::written(existed, action)
    } else {
        ItemStatus::Partial {
            action,
            reason: reasons.join("; "),
        }
    }
}

/// Copies the messages Peek Messages shows that the target does not already hold (compared by
/// text, as a multiset), so a re-run copies nothing. Put Message is not idempotent: it is sent
/// once, and when its answer is lost the target is peeked to see whether it landed before it
/// is sent again.
pub(super) async fn copy_queue_messages(
    clients: &Clients,
    queue: &str,
) -> Result<MessageCopy, (MessageCopy, AzureError)> {
    let mut copy = MessageCopy::default();
    let peeked = async {
        let source = clients.source_queue.peek_messages(queue).await?;
        Ok((source, clients.target_queue.peek_messages(queue).await?))
    };
    let (source, target) = match peeked.await {
        Ok(both) => both,
        Err(error) => return Err((copy, error)),
    };
    copy.more_in_source = source.len() >= PEEK_MAX;
    let target_window_full = target.len() >= PEEK_MAX;
    // The target's messages by text: those no source message has matched yet, and all of them
    // (with atg's copies) as far as atg knows, every one in view while they are fewer than 32.
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for text in &target {
        *unmatched.entry(text.expose()).or_default() += 1;
    }
    let mut held = unmatched.clone();
    let mut in_target = target.len();
    for text in &source {
        if let Some(count) = unmatched.get_mut(text.expose()).filter(|c| **c > 0) {
            *count -= 1;
            copy.present += 1;
            continue;
        }
        if target_window_full {
            copy.not_compared += 1;
            continue;
        }
        let already = held.get(text.expose()).copied().unwrap_or_default();
        match put_message_once(clients, queue, text, (already, in_target)).await {
            Ok(true) => {
                copy.copied += 1;
                in_target += 1;
                *held.entry(text.expose()).or_default() += 1;
            }
            Ok(false) => copy.unconfirmed += 1,
            Err(error) => return Err((copy, error)),
        }
    }
    Ok(copy)
}

/// Puts one message so that it lands once: after a failed try the target is peeked, and the
/// message is sent again only when the peek shows it did not land (the target held `already`
/// copies of this text among `in_target` messages). `Ok(false)` when that cannot be seen: the
/// target holds 32 messages or more, beyond what a peek shows.
async fn put_message_once(
    clients: &Clients,
    queue: &str,
    text: &Sensitive,
    (already, in_target): (usize, usize),
) -> Result<bool, AzureError> {
    const TRIES: u32 = 5;
    let target = &clients.target_queue;
    for attempt in 1..=TRIES {
        let error = match target.put_message(queue, text).await {
            Ok(()) => return Ok(true),
            // A refusal (403, 400, ...) took no effect and would refuse again.
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => error,
        };
        if in_target >= PEEK_MAX {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        let now = target.peek_messages(queue).await?;
        let copies = now.iter().filter(|m| m.expose() == text.expose()).count();
        if copies > already {
            return Ok(true);
        }
        if attempt == TRIES {
            return Err(error);
        }
        tracing::debug!(queue, attempt, error = %error, "put message did not land: sending it again");
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_status_says_what_was_copied_and_what_may_be_missing() {
        let replicated = || ItemStatus::Created {
            action: "queue created with its metadata".into(),
        };
        let copied = MessageCopy {
            copied: 2,
            ..MessageCopy::default()
        };
        let ItemStatus::Created { action } = with_messages(replicated(), &copied) else {
            panic!("not created")
        };
        assert_eq!(
            action,
            "queue created with its metadata; 2 message(s) copied"
        );
        let same = ItemStatus::Identical;
        assert!(matches!(
            with_messages(same.clone(), &MessageCopy::default()),
            ItemStatus::Identical
        ));
        let more = MessageCopy {
            copied: 1,
            ..MessageCopy::default()
        };
        assert!(matches!(
            with_messages(same.clone(), &more),
            ItemStatus::Overwritten { .. }
        ));
        let full = MessageCopy {
            more_in_source: true,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { reason, .. } = with_messages(same.clone(), &full) else {
            panic!("not partial")
        };
        assert_eq!(reason, PEEK_LIMIT);
        let hidden = MessageCopy {
            not_compared: 1,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { action, .. } = with_messages(same, &hidden) else {
            panic!("not partial")
        };
        assert_eq!(
            action, "queue kept",
            "not every message is known to be there"
        );
        let unsure = MessageCopy {
            copied: 1,
            not_compared: 2,
            unconfirmed: 1,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { reason, .. } = with_messages(replicated(), &unsure) else {
            panic!("not partial")
        };
        assert!(
            reason.contains("2 source message(s) not copied"),
            "{reason}"
        );
        assert!(reason.contains("1 message(s) may be missing"), "{reason}");
    }
}
