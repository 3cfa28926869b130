//! `atg-emulator`: runs the test kit's Azure emulator as a process for out-of-process peers (the
//! demo script, Python clients, benchmarks) and for people rehearsing a replication with their own
//! data. When ready it prints, on stdout, everything a client needs (addresses of every service,
//! the CA, the token endpoint and tenant, the vault hosts served, atg's transport flags, storage
//! accounts and keys): one JSON line by default, `KEY=value` lines with `--print env`
//! (docs/emulator.md). It serves until SIGTERM or ctrl-c.

use std::path::PathBuf;

use anyhow::Context as _;
use atg_testkit::azurite::{Azurite, AzuriteAccount};
use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::storage_gateway::StorageGateway;
use atg_testkit::{
    mint_token, Emulator, EmulatorOptions, FaultKind, FaultOptions, LostAnswerKind,
    LostAnswerOptions, ThrottleOptions,
};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

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
    /// Requests faults may hit, comma-separated `METHOD` or `METHOD collection` (e.g.
    /// `POST list,PUT config`; docs/emulator.md); default: every data-plane request.
    #[arg(long, value_delimiter = ',')]
    fault_operations: Vec<String>,
    /// Tenant id of every vault.
    #[arg(long)]
    tenant: Option<String>,
    /// Seed of the fault-injection random generators.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of Key Vault writes that take effect and then lose their answer (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    lost_answer_rate: f64,
    /// How a lost answer looks, comma-separated: reset,500,503,timeout (default: all).
    #[arg(long, value_delimiter = ',', value_parser = LostAnswerKind::parse)]
    lost_answers: Vec<LostAnswerKind>,
    /// Writes whose answers may be lost, comma-separated `METHOD` or `METHOD collection`
    /// (e.g. `PUT secrets,POST keys`); default: every write.
    #[arg(long, value_delimiter = ',')]
    lost_answer_operations: Vec<String>,
    /// Fraction of ARM writes that take effect and then lose their answer (0.0-1.0); kinds from
    /// `--lost-answers`.
    #[arg(long, default_value_t = 0.0)]
    arm_lost_answer_rate: f64,
    /// ARM writes whose answers may be lost, comma-separated `METHOD` or `METHOD collection`
    /// (e.g. `PUT config,PUT sites`); default: every write.
    #[arg(long, value_delimiter = ',')]
    arm_lost_answer_operations: Vec<String>,
    /// Format of the ready information on stdout.
    #[arg(long, value_enum, default_value_t = ReadyFormat::Json)]
    print: ReadyFormat,
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

/// How the ready information is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReadyFormat {
    /// One JSON object on one line.
    Json,
    /// `ATG_EMULATOR_*=value` lines, ready for `export` in a shell.
    Env,
}

/// Hosts atg must reach through the emulator, for `--connect-to HOST=ADDR` (a host also covers
/// its subdomains).
const EMULATED_HOSTS: [&str; 5] = [
    "vault.azure.net",
    "vault.azure.cn",
    "vault.usgovcloudapi.net",
    "login.microsoftonline.com",
    "management.azure.com",
];
const STORAGE_HOSTS: [&str; 3] = [
    "blob.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
];

/// Everything a client needs to use the running emulator, as printed on stdout.
fn ready_info(
    emulator: &Emulator,
    ca: &std::path::Path,
    storage: Option<(std::net::SocketAddr, &[AzuriteAccount])>,
    seeded_vaults: &[&str],
) -> Value {
    let addr = emulator.addr().to_string();
    let options = emulator.options();
    let tenant = options.default_tenant.clone();
    let mut atg_args = vec!["--ca-cert".to_owned(), ca.display().to_string()];
    for host in EMULATED_HOSTS {
        atg_args.extend(["--connect-to".to_owned(), format!("{host}={addr}")]);
    }
    let mut info = json!({
        "addr": addr,
        "ca": ca.display().to_string(),
        "services": {
            "entra": addr,
            "key_vault": addr,
            "arm": addr,
        },
        "tenant": tenant,
        "token_endpoint": format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        "credentials": if options.principals.is_empty() {
            "any client id and secret"
        } else {
            "the configured principals"
        },
        "vault_hosts": ["*.vault.azure.net", "*.vault.azure.cn", "*.vault.usgovcloudapi.net"],
        "arm_host": "management.azure.com",
        "seeded_vaults": seeded_vaults
            .iter()
            .map(|vault| format!("https://{vault}.vault.azure.net/"))
            .collect::<Vec<_>>(),
    });
    if let Some((gateway, accounts)) = storage {
        let gateway = gateway.to_string();
        for host in STORAGE_HOSTS {
            atg_args.extend(["--connect-to".to_owned(), format!("{host}={gateway}")]);
        }
        info["storage"] = json!(gateway);
        info["services"]["storage"] = json!(gateway);
        info["storage_accounts"] = accounts
            .iter()
            .map(|account| {
                json!({
                    "name": account.name,
                    // The emulator's own made-up key (derived from the name), never a real one.
                    "key": account.key,
                    "blob": format!("https://{}.blob.core.windows.net/", account.name),
                    "queue": format!("https://{}.queue.core.windows.net/", account.name),
                    "table": format!("https://{}.table.core.windows.net/", account.name),
                })
            })
            .collect();
    }
    info["atg_args"] = json!(atg_args);
    info
}

/// `ATG_EMULATOR_*=value` lines of the ready information; values with spaces are single-quoted.
fn env_lines(info: &Value) -> Vec<String> {
    let text = |value: &Value| {
        value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned)
    };
    let quote = |value: String| {
        if value.contains([' ', '\'', '"', '$']) {
            format!("'{}'", value.replace('\'', r"'\''"))
        } else {
            value
        }
    };
    let mut lines = Vec::new();
    for (key, member) in [
        ("ADDR", "addr"),
        ("CA", "ca"),
        ("TENANT", "tenant"),
        ("TOKEN_ENDPOINT", "token_endpoint"),
        ("STORAGE_ADDR", "storage"),
    ] {
        if let Some(value) = info.get(member) {
            lines.push(format!("ATG_EMULATOR_{key}={}", quote(text(value))));
        }
    }
    let join = |member: &str| {
        info[member]
            .as_array()
            .map(|items| items.iter().map(text).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    lines.push(format!(
        "ATG_EMULATOR_VAULT_HOSTS={}",
        quote(join("vault_hosts"))
    ));
    lines.push(format!(
        "ATG_EMULATOR_SEEDED_VAULTS={}",
        quote(join("seeded_vaults"))
    ));
    lines.push(format!("ATG_EMULATOR_ATG_ARGS={}", quote(join("atg_args"))));
    for (index, account) in info["storage_accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let number = index + 1;
        lines.push(format!(
            "ATG_EMULATOR_STORAGE_ACCOUNT_{number}={}",
            text(&account["name"])
        ));
        lines.push(format!(
            "ATG_EMULATOR_STORAGE_KEY_{number}={}",
            quote(text(&account["key"]))
        ));
    }
    lines
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
        options.fault_operations.clone_from(&args.fault_operations);
        let lost_answers = |rate: f64, operations: &[String]| {
            (rate > 0.0).then(|| LostAnswerOptions {
                rate: rate.clamp(0.0, 1.0),
                kinds: args.lost_answers.clone(),
                operations: operations.to_vec(),
                seed: args.seed,
                timeout_ms: 2_000,
            })
        };
        options.lost_answers = lost_answers(args.lost_answer_rate, &args.lost_answer_operations);
        options.arm_lost_answers =
            lost_answers(args.arm_lost_answer_rate, &args.arm_lost_answer_operations);
    });
    let dir = match args.ca_out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("atg-emulator-{}", std::process::id())),
    };
    let ca = emulator.write_ca(&dir)?;
    emulator.write_leaf(&dir)?;
    let mut storage = None;
    let mut storage_accounts = Vec::new();
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
        storage_accounts = accounts.to_vec();
        storage = Some((azurite, gateway));
    }
    let seeded: Vec<&str> = args
        .seed_demo
        .iter()
        .chain(args.seed_secrets.iter().map(|(vault, _)| vault))
        .map(String::as_str)
        .collect();
    let ready = ready_info(
        &emulator,
        &ca,
        storage
            .as_ref()
            .map(|(_, gateway)| (gateway.addr, storage_accounts.as_slice())),
        &seeded,
    );
    // The ready information is this binary's interface; peers parse it.
    #[allow(clippy::print_stdout)]
    match args.print {
        ReadyFormat::Json => println!("{ready}"),
        ReadyFormat::Env => {
            for line in env_lines(&ready) {
                println!("{line}");
            }
        }
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
