//! Lost answers: writes Azurite carries out whose answer the gateway then drops or replaces.

/// What the client gets instead of the answer of a write that took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostAnswer {
    /// The connection is reset.
    Reset,
    /// This status (500, 503, ...) with an empty body.
    Status(u16),
}

/// Writes that are carried out by Azurite and then lose their answer.
#[derive(Clone, Debug)]
pub struct LostAnswers {
    /// Which writes: a `comp` value (`appendblock`, `blocklist`, `block`, `page`, `metadata`,
    /// `acl`, `tags`, ...), or, for writes without one, `message` (Put Message), `batch` (an
    /// entity group transaction), `entity`, `table` (Create Table), `container`, `queue`, `copy`
    /// (a blob written from `x-ms-copy-source`) or `blob`; `*` for every write.
    pub operations: Vec<String>,
    /// Fraction of those writes, 0.0..=1.0 (seeded like the faults).
    pub rate: f64,
    /// Instead of `rate`: the 1st, (n+1)th, (2n+1)th ... write of each operation, whatever
    /// order concurrent writes arrive in (a retry counts as the next write).
    pub every: Option<u64>,
    /// Chosen uniformly for each lost answer.
    pub answers: Vec<LostAnswer>,
}

impl LostAnswers {
    /// `operations` lose their answer at `rate` by a connection reset.
    #[must_use]
    pub fn new(operations: &[&str], rate: f64) -> Self {
        LostAnswers {
            operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            rate,
            every: None,
            answers: vec![LostAnswer::Reset],
        }
    }

    /// `operations` lose the answer of their 1st, (n+1)th, ... write by a connection reset.
    #[must_use]
    pub fn every(operations: &[&str], n: u64) -> Self {
        LostAnswers {
            every: Some(n.max(2)),
            ..Self::new(operations, 0.0)
        }
    }

    /// The answers to choose from instead of a reset.
    #[must_use]
    pub fn answering(mut self, answers: &[LostAnswer]) -> Self {
        self.answers = answers.to_vec();
        self
    }

    pub(super) fn selects(&self, operation: Option<&str>) -> bool {
        operation
            .is_some_and(|operation| self.operations.iter().any(|o| o == "*" || o == operation))
    }
}

/// The operation a write is, for [`LostAnswers`]; `None` for reads.
pub(super) fn operation(
    service: &str,
    method: &hyper::Method,
    uri: &hyper::Uri,
    comp: Option<&str>,
    copy: bool,
) -> Option<String> {
    if method == hyper::Method::GET || method == hyper::Method::HEAD {
        return None;
    }
    if let Some(comp) = comp {
        return Some(comp.to_owned());
    }
    let path = uri.path();
    let container = uri
        .query()
        .unwrap_or_default()
        .contains("restype=container");
    let name = match service {
        "queue" if path.ends_with("/messages") => "message",
        "queue" => "queue",
        "table" if path.ends_with("$batch") => "batch",
        "table" if path.trim_end_matches('/').ends_with("/Tables") => "table",
        "table" => "entity",
        _ if container => "container",
        _ if copy => "copy",
        _ => "blob",
    };
    Some(name.to_owned())
}
