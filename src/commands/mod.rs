//! One function per subcommand: arguments → settings → engine → exit status.

pub mod deploy;
pub mod docs;
pub mod plugins;

/// How the process ends. Documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every resource succeeded.
    Success,
    /// The run finished with failures (or was cancelled).
    Failure,
    /// The run could not start: bad flags, inventory or credentials.
    Error,
    /// `--dry-run --detailed-exitcode`: the plan would change a target.
    ChangesPending,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
            ExitStatus::ChangesPending => 3,
        }
    }
}
