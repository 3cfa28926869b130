//! `atg-emulator`: runs the test kit's Azure emulator as a process for out-of-process peers (the
//! demo script, Python clients, benchmarks). Prints one JSON line `{"addr","ca"}` on stdout when
//! ready and serves until SIGTERM or ctrl-c.

use std::path::PathBuf;

use anyhow::Context as _;
use atg_testkit::{Emulator, EmulatorOptions, FaultKind, FaultOptions, ThrottleOptions};
use clap::Parser;

/// Local Azure emulator (Entra token, Key Vault data plane, minimal ARM) for atg tests.
#[derive(Debug, Parser)]
#[command(version, about)]
struct EmulatorArgs {
    /// Port on 127.0.0.1 (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory to write ca.pem (and leaf.pem, leaf-key.pem) into; default: a temp directory.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Per-vault throttle as LIMIT/SECONDS, e.g. 4000/10.
    #[arg(long, value_parser = parse_throttle)]
    throttle: Option<ThrottleOptions>,
    /// Fraction of data-plane requests to fault (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Fault kinds to inject, comma-separated: 429,503,reset.
    #[arg(long, value_delimiter = ',', value_parser = FaultKind::parse)]
    faults: Vec<FaultKind>,
    /// Tenant id of every vault.
    #[arg(long)]
    tenant: Option<String>,
    /// Seed of the fault-injection random generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_throttle(text: &str) -> Result<ThrottleOptions, String> {
    let (limit, seconds) = text
        .split_once('/')
        .ok_or_else(|| format!("expected LIMIT/SECONDS, got `{text}`"))?;
    let limit = limit
        .trim()
        .parse::<u32>()
        .map_err(|error| format!("invalid limit: {error}"))?;
    let seconds = seconds
        .trim()
        .parse::<f64>()
        .map_err(|error| format!("invalid seconds: {error}"))?;
    if limit == 0 || seconds.is_nan() || seconds <= 0.0 {
        return Err("limit and seconds must be positive".to_owned());
    }
    // Whole milliseconds are plenty for a test window; the cast cannot overflow for sane input.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let window_ms = (seconds * 1000.0).round() as u64;
    Ok(ThrottleOptions { limit, window_ms })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = EmulatorArgs::parse();
    let mut options = EmulatorOptions {
        port: (args.port != 0).then_some(args.port),
        latency_ms: args.latency_ms,
        throttle: args.throttle,
        ..EmulatorOptions::default()
    };
    if args.fault_rate > 0.0 {
        options.faults = Some(FaultOptions {
            rate: args.fault_rate.clamp(0.0, 1.0),
            kinds: args.faults,
            seed: args.seed,
        });
    }
    if let Some(tenant) = args.tenant {
        options.default_tenant = tenant;
    }
    let emulator = Emulator::start(options).await?;
    let dir = match args.ca_out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("atg-emulator-{}", std::process::id())),
    };
    let ca = emulator.write_ca(&dir)?;
    emulator.write_leaf(&dir)?;
    let ready =
        serde_json::json!({ "addr": emulator.addr().to_string(), "ca": ca.display().to_string() });
    // The single ready line is this binary's interface; peers parse it.
    println!("{ready}");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install sigterm handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    emulator.shutdown().await;
    Ok(())
}
