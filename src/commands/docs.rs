//! `atg completions SHELL` and `atg man`: generated from the clap definition, so they never
//! drift from `--help`.

use std::io::Write;

use clap::CommandFactory;

use super::ExitStatus;
use crate::cli::{Cli, CompletionsArgs};
use crate::ui::Printer;

pub fn completions(args: &CompletionsArgs, printer: Printer) -> ExitStatus {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "atg", &mut script);
    write_stdout(&script, "the completion script", printer)
}

pub fn man(printer: Printer) -> ExitStatus {
    match man_page() {
        Ok(roff) => write_stdout(&roff, "the man page", printer),
        Err(error) => {
            printer.error(&format!("cannot render the man page: {error}"), &[]);
            ExitStatus::Failure
        }
    }
}

/// The man page of `atg`, then one page per subcommand (`atg-deploy`, ...) in the same roff
/// stream: `man ./atg.1` shows them one after the other, every flag with its help text.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut command = Cli::command();
    command.build();
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut roff)?;
    for subcommand in command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        clap_mangen::Man::new(subcommand.clone()).render(&mut roff)?;
    }
    Ok(roff)
}

fn write_stdout(bytes: &[u8], what: &str, printer: Printer) -> ExitStatus {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitStatus::Success,
        Err(error) => {
            printer.error(&format!("cannot write {what} to stdout: {error}"), &[]);
            ExitStatus::Failure
        }
    }
}
