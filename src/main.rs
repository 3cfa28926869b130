//! Parse, initialise logging, build the runtime, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use atg::cli::{Cli, Command};
use atg::commands::{self, ExitStatus};
use atg::ui::Printer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_noting_sources(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                ExitStatus::Error.code()
            } else {
                0
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let color = cli.color.for_stderr();
    init_logging(cli.verbose, cli.quiet, color);
    let printer = Printer::new(cli.quiet, cli.verbose, color);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            printer.error(&format!("cannot start the async runtime: {error}"), &[]);
            return ExitCode::from(ExitStatus::Error.code());
        }
    };
    let status = runtime.block_on(async {
        match &cli.command {
            Command::Deploy(args) => commands::deploy::run(args, printer).await,
            Command::Plugins(args) => commands::plugins::run(args, printer),
            Command::Completions(args) => commands::docs::completions(args, printer),
            Command::Man => commands::docs::man(printer),
        }
    });
    ExitCode::from(status.code())
}

/// `-v` debug and `-vv` trace for atg itself; `RUST_LOG`, when set, wins. Colour only as
/// `--color` decided (never escape codes in a redirected file by default).
fn init_logging(verbose: u8, quiet: bool, color: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,atg=debug",
        (false, _) => "warn,atg=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(true)
        .init();
}
