//! `atg-emulator`: runs the test kit's Azure emulator as a process for out-of-process peers (the
//! demo script, Python clients, benchmarks). Prints one JSON line `{"addr","ca"}` on stdout when
//! ready (with `"storage"`, the storage gateway's address, under `--storage-demo`) and serves
//! until SIGTERM or ctrl-c.

use std::path::PathBuf;

use anyhow::Context as _;
use atg_testkit::azurite::{Azurite, AzuriteAccount};
use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::storage_gateway::StorageGateway;
use atg_testkit::{
    mint_token, Emulator, EmulatorOptions, FaultKind, FaultOptions, ThrottleOptions,
};
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
    /// Also start Azurite with storage accounts SOURCE and TARGET behind a gateway answering on
    /// `<account>.blob|queue|table.core.windows.net`, and fill SOURCE with a small demo:
    /// containers with blobs (block, page, append; metadata, tags), a queue, a typed table.
    /// ARM's listKeys answers for both, in resource group `demo` of subscriptions
    /// `00000000-0000-0000-0000-00000000000a` (SOURCE) and `...0b` (TARGET), as scripts/demo.sh
    /// names them.
    #[arg(long, value_name = "SOURCE,TARGET", value_parser = parse_pair)]
    storage_demo: Option<(String, String)>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (source, target) = text
        .split_once(',')
        .ok_or_else(|| format!("expected SOURCE,TARGET, got `{text}`"))?;
    Ok((source.trim().to_owned(), target.trim().to_owned()))
}

/// Fills `account` in Azurite through its REST API with a bearer token (Azurite checks the
/// claims, not the signature).
async fn seed_storage(azurite: &Azurite, account: &str) -> anyhow::Result<()> {
    let ca = std::fs::read(&azurite.ca_path).context("read Azurite's CA")?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .build()?;
    let token = mint_token(
        "72f988bf-0000-4000-8000-00000000a7f0",
        "00000000-0000-4000-8000-0000000000de",
        "https://storage.azure.com",
    );
    let send =
        |method: reqwest::Method, url: String, headers: Vec<(&str, String)>, body: Vec<u8>| {
            let mut request = client
                .request(method, &url)
                .bearer_auth(&token)
                .header("x-ms-version", "2021-08-06")
                .header("content-length", body.len())
                .body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            async move {
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("send {url}"))?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                Ok::<_, anyhow::Error>(())
            }
        };
    let blob = format!("https://{}/{account}", azurite.blob);
    let put = reqwest::Method::PUT;
    for (container, owner) in [("reports", "finance"), ("assets", "web")] {
        send(
            put.clone(),
            format!("{blob}/{container}?restype=container"),
            vec![("x-ms-meta-owner", owner.to_owned())],
            Vec::new(),
        )
        .await?;
    }
    for (name, text) in [
        (
            "reports/2026/q1.csv",
            "month,revenue\njan,10\nfeb,12\nmar,15\n",
        ),
        (
            "reports/2026/q2.csv",
            "month,revenue\napr,16\nmay,18\njun,21\n",
        ),
        ("assets/robots.txt", "User-agent: *\nDisallow:\n"),
    ] {
        send(
            put.clone(),
            format!("{blob}/{name}"),
            vec![
                ("x-ms-blob-type", "BlockBlob".to_owned()),
                ("x-ms-blob-content-type", "text/plain".to_owned()),
                ("x-ms-meta-source", "demo".to_owned()),
                ("x-ms-tags", "env=demo".to_owned()),
            ],
            text.as_bytes().to_vec(),
        )
        .await?;
    }
    // A 1 MiB page blob with one written page range, and an append blob of two blocks.
    send(
        put.clone(),
        format!("{blob}/assets/disk.vhd"),
        vec![
            ("x-ms-blob-type", "PageBlob".to_owned()),
            ("x-ms-blob-content-length", (1024 * 1024).to_string()),
        ],
        Vec::new(),
    )
    .await?;
    send(
        put.clone(),
        format!("{blob}/assets/disk.vhd?comp=page"),
        vec![
            ("x-ms-page-write", "update".to_owned()),
            ("x-ms-range", "bytes=0-4095".to_owned()),
        ],
        vec![7u8; 4096],
    )
    .await?;
    send(
        put.clone(),
        format!("{blob}/assets/app.log"),
        vec![("x-ms-blob-type", "AppendBlob".to_owned())],
        Vec::new(),
    )
    .await?;
    for line in ["started\n", "ready\n"] {
        send(
            put.clone(),
            format!("{blob}/assets/app.log?comp=appendblock"),
            Vec::new(),
            line.as_bytes().to_vec(),
        )
        .await?;
    }
    send(
        put.clone(),
        format!("https://{}/{account}/jobs", azurite.queue),
        vec![("x-ms-meta-purpose", "work".to_owned())],
        Vec::new(),
    )
    .await?;
    let table = format!("https://{}/{account}", azurite.table);
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    let table_headers = || {
        vec![
            ("content-type", "application/json".to_owned()),
            ("accept", "application/json;odata=nometadata".to_owned()),
        ]
    };
    send(
        reqwest::Method::POST,
        format!("{table}/Tables"),
        table_headers(),
        json(serde_json::json!({ "TableName": "customers" })),
    )
    .await?;
    for (row, name, since) in [("1", "Contoso", 2019), ("2", "Fabrikam", 2021)] {
        send(
            reqwest::Method::POST,
            format!("{table}/customers"),
            table_headers(),
            json(serde_json::json!({
                "PartitionKey": "eu", "RowKey": row, "Name": name,
                "Since": since, "Since@odata.type": "Edm.Int32",
            })),
        )
        .await?;
    }
    Ok(())
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
    let mut ready =
        serde_json::json!({ "addr": emulator.addr().to_string(), "ca": ca.display().to_string() });
    let mut storage = None;
    if let Some((source, target)) = &args.storage_demo {
        let accounts = [AzuriteAccount::named(source), AzuriteAccount::named(target)];
        let azurite = Azurite::start(&emulator, &accounts).await?;
        for (account, subscription) in accounts.iter().zip(["0a", "0b"]) {
            emulator.seed_storage_keys(
                &format!("00000000-0000-0000-0000-0000000000{subscription}"),
                "demo",
                &account.name,
                vec![account.key.clone()],
            );
        }
        seed_storage(&azurite, source)
            .await
            .context("seed the storage demo")?;
        let gateway = StorageGateway::start(&emulator, &azurite, None).await?;
        ready["storage"] = gateway.addr.to_string().into();
        storage = Some((azurite, gateway));
    }
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
    if let Some((azurite, gateway)) = storage {
        drop(gateway);
        azurite.stop().await;
    }
    emulator.shutdown().await;
    Ok(())
}
