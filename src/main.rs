//! Parse, initialise logging, build the runtime, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use atg::cli::{Cli, Command};
use atg::commands::deploy::Purpose;
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
            if code != 0 && asks_for_json(std::env::args_os()) {
                let message = error.kind().as_str().unwrap_or("invalid arguments");
                let hints = vec!["run `atg --help` for the commands and their flags".to_owned()];
                let document = atg::orchestrator::report::ErrorReport::new(message, &hints, code);
                let _ = Printer::new(true, 0, false).json(&document);
            }
            return ExitCode::from(code);
        }
    };
    let color = cli.color.for_stderr();
    let printer = Printer::new(cli.quiet, cli.verbose, color);
    // Opened before anything else: a log file that cannot be written stops the run before any
    // request.
    let log_file = match &cli.command {
        Command::Deploy(args) | Command::Verify(args) => args.log_file.as_deref(),
        _ => None,
    };
    let log_file = match log_file.map(open_log_file).transpose() {
        Ok(file) => file,
        Err(message) => {
            printer.error(
                &message,
                &["pass a file path in a directory atg can write to".to_owned()],
            );
            return ExitCode::from(ExitStatus::Error.code());
        }
    };
    init_logging(cli.verbose, cli.quiet, color, log_file);
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
            Command::Deploy(args) => commands::deploy::run(args, printer, Purpose::Deploy).await,
            Command::Verify(args) => commands::deploy::run(args, printer, Purpose::Verify).await,
            Command::Plugins(args) => commands::plugins::run(args, printer),
            Command::Completions(args) => commands::docs::completions(args, printer),
            Command::Man => commands::docs::man(printer),
        }
    });
    ExitCode::from(status.code())
}

/// Whether the arguments that failed to parse still ask for `--output json` (then the error is a
/// JSON document on stdout too).
fn asks_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<std::ffi::OsString> = args.collect();
    args.iter().enumerate().any(|(index, arg)| {
        arg == "--output=json"
            || (arg == "--output" && args.get(index + 1).is_some_and(|next| next == "json"))
    })
}

fn open_log_file(path: &Path) -> Result<std::fs::File, String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("--log-file `{shown}` is a directory"));
    }
    std::fs::File::create(path)
        .map_err(|error| format!("--log-file `{shown}` cannot be written: {error}"))
}

/// `-v` debug and `-vv` trace for atg itself; `RUST_LOG`, when set, wins. Colour only as
/// `--color` decided (never escape codes in a redirected file by default). The log file, when
/// given, gets atg's debug messages and the per-request trace lines (`TracePolicy`) whatever
/// the terminal's verbosity, never colour.
fn init_logging(verbose: u8, quiet: bool, color: bool, log_file: Option<std::fs::File>) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,atg=debug",
        (false, _) => "warn,atg=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(true)
        .with_filter(filter);
    let file = log_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(Mutex::new(file))
            .with_ansi(false)
            .with_target(true)
            .with_filter(EnvFilter::new("warn,atg=debug,atg::azure::policies=trace"))
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}
