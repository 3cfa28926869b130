//! `atg-emulator`: runs the test kit's Azure emulator as a process for out-of-process peers (the
//! demo script, Python clients, benchmarks). Prints one JSON line `{"addr","ca"}` on stdout when
//! ready and serves until SIGTERM or ctrl-c.

use std::path::PathBuf;

use anyhow::Context as _;
use atg_testkit::kv_rest::VaultRestClient;
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
    /// Before serving, fill VAULT with a small demo: secrets (one disabled, one with older
    /// versions), an RSA key and a self-signed certificate.
    #[arg(long, value_name = "VAULT")]
    seed_demo: Option<String>,
    /// Before serving, fill VAULT with COUNT secrets `secret-00000`... (for benchmarks).
    #[arg(long, value_name = "VAULT=COUNT", value_parser = parse_bulk)]
    seed_secrets: Option<(String, usize)>,
}

fn parse_bulk(text: &str) -> Result<(String, usize), String> {
    let (vault, count) = text
        .split_once('=')
        .ok_or_else(|| format!("expected VAULT=COUNT, got `{text}`"))?;
    let count = count
        .trim()
        .parse::<usize>()
        .map_err(|error| format!("invalid count: {error}"))?;
    Ok((vault.trim().to_owned(), count))
}

/// Seeds through the plain REST client, as any other client would.
async fn seed(emulator: &Emulator, args: &EmulatorArgs) -> anyhow::Result<()> {
    if let Some(vault) = &args.seed_demo {
        let client = VaultRestClient::new(emulator, vault)?;
        let tags: std::collections::BTreeMap<String, String> =
            [("env".to_owned(), "demo".to_owned())].into();
        client
            .set_secret(
                "db-password",
                "demo-value-1",
                Some("text/plain"),
                Some(&tags),
                true,
            )
            .await?;
        client
            .set_secret("api-key", "demo-value-2", None, None, true)
            .await?;
        for value in ["old-1", "old-2", "current"] {
            client
                .set_secret("rotated", value, None, None, true)
                .await?;
        }
        client
            .set_secret("retired", "demo-value-4", None, None, false)
            .await?;
        client
            .create_key("signing-key", "RSA", Some(2048), None)
            .await?;
        client
            .create_certificate(
                "web-cert",
                &serde_json::json!({
                    "key_props": { "exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false },
                    "secret_props": { "contentType": "application/x-pkcs12" },
                    "x509_props": { "subject": "CN=demo.example", "validity_months": 12 },
                    "issuer": { "name": "Self" }
                }),
            )
            .await?;
    }
    if let Some((vault, count)) = &args.seed_secrets {
        let client = std::sync::Arc::new(VaultRestClient::new(emulator, vault)?);
        let names: Vec<usize> = (0..*count).collect();
        for chunk in names.chunks(64) {
            let mut tasks = tokio::task::JoinSet::new();
            for index in chunk {
                let client = client.clone();
                let index = *index;
                tasks.spawn(async move {
                    client
                        .set_secret(
                            &format!("secret-{index:05}"),
                            &format!("value-{index:05}"),
                            None,
                            None,
                            true,
                        )
                        .await
                });
            }
            while let Some(result) = tasks.join_next().await {
                result??;
            }
        }
    }
    Ok(())
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
        ..EmulatorOptions::default()
    };
    if let Some(tenant) = &args.tenant {
        options.default_tenant.clone_from(tenant);
    }
    // Seed fast and fault-free, then switch the behaviour knobs on.
    let emulator = Emulator::start(options).await?;
    seed(&emulator, &args).await.context("seed the emulator")?;
    emulator.clear_requests();
    emulator.set_options(|options| {
        options.latency_ms = args.latency_ms;
        options.throttle = args.throttle;
        if args.fault_rate > 0.0 {
            options.faults = Some(FaultOptions {
                rate: args.fault_rate.clamp(0.0, 1.0),
                kinds: args.faults.clone(),
                seed: args.seed,
            });
        }
    });
    let dir = match args.ca_out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("atg-emulator-{}", std::process::id())),
    };
    let ca = emulator.write_ca(&dir)?;
    emulator.write_leaf(&dir)?;
    let ready =
        serde_json::json!({ "addr": emulator.addr().to_string(), "ca": ca.display().to_string() });
    // The single ready line is this binary's interface; peers parse it.
    #[allow(clippy::print_stdout)] // the ready line is this binary's interface
    {
        println!("{ready}");
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install sigterm handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    emulator.shutdown().await;
    Ok(())
}
