//! `atg-emulator` as a user runs it: the ready information it prints is enough to use every
//! service (the token endpoint answers, the seeded vault lists its secrets through the printed
//! `--connect-to` mapping and CA, the printed storage key signs a Shared Key request), in both
//! print formats.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Starts the binary and returns it with the lines it printed before the first blank read
/// (`lines` lines: 1 for JSON, or all env lines).
async fn start(args: &[&str], lines: usize) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atg-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn atg-emulator");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = Vec::new();
    while out.len() < lines {
        let line = tokio::time::timeout(std::time::Duration::from_secs(120), reader.next_line())
            .await
            .expect("ready in time")
            .expect("read stdout")
            .expect("a ready line before exit");
        out.push(line);
    }
    (child, out)
}

/// A client that reaches hosts the way the printed `--connect-to HOST=ADDR` flags say (a host
/// covers its subdomains, as in atg) and trusts the printed CA.
fn client_from(atg_args: &[String], ca: &str, hosts: &[String]) -> reqwest::Client {
    let mut map: Vec<(String, SocketAddr)> = Vec::new();
    let mut args = atg_args.iter();
    let mut ca_flag = None;
    while let Some(flag) = args.next() {
        let value = args.next().expect("flag value");
        match flag.as_str() {
            "--connect-to" => {
                let (host, addr) = value.split_once('=').expect("HOST=ADDR");
                map.push((host.to_owned(), addr.parse().expect("addr")));
            }
            "--ca-cert" => ca_flag = Some(value.clone()),
            other => panic!("unexpected printed flag {other}"),
        }
    }
    assert_eq!(
        ca_flag.as_deref(),
        Some(ca),
        "--ca-cert names the printed CA"
    );
    let pem = std::fs::read(ca).expect("the printed CA exists");
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"));
    for host in hosts {
        let (_, addr) = map
            .iter()
            .find(|(suffix, _)| host == suffix || host.ends_with(&format!(".{suffix}")))
            .unwrap_or_else(|| panic!("no --connect-to covers {host}"));
        builder = builder.resolve(host, *addr);
    }
    builder.build().expect("client")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

/// Shared Key for a Blob service request without body (the 2009-09-19+ string to sign).
fn shared_key(account: &str, key: &str, date: &str, version: &str, resource: &str) -> String {
    let to_sign = format!(
        "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{resource}"
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&STANDARD.decode(key).expect("key"))
        .expect("hmac");
    mac.update(to_sign.as_bytes());
    format!(
        "SharedKey {account}:{}",
        STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn printed_json_is_enough_to_use_every_service() {
    let (mut child, lines) = start(
        &[
            "--seed-demo",
            "rehearsal",
            "--storage-demo",
            "rehsrc,rehdst",
            "--tenant",
            "11111111-2222-4333-8444-555555555555",
        ],
        1,
    )
    .await;
    let info: Value = serde_json::from_str(&lines[0]).expect("one JSON line");
    let ca = info["ca"].as_str().expect("ca");
    let token_endpoint = info["token_endpoint"].as_str().expect("token endpoint");
    assert_eq!(
        token_endpoint,
        "https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555/oauth2/v2.0/token"
    );
    let vault = info["seeded_vaults"][0].as_str().expect("seeded vault");
    let account = &info["storage_accounts"][0];
    let account_name = account["name"].as_str().expect("name");
    let blob = account["blob"].as_str().expect("blob url");
    let host = |url: &str| {
        url::Url::parse(url)
            .expect("url")
            .host_str()
            .expect("host")
            .to_owned()
    };
    let http = client_from(
        &strings(&info["atg_args"]),
        ca,
        &[host(token_endpoint), host(vault), host(blob)],
    );

    // The token endpoint answers with a token for Key Vault.
    let token: Value = http
        .post(token_endpoint)
        .form(&BTreeMap::from([
            ("grant_type", "client_credentials"),
            ("client_id", "rehearsal-client"),
            ("client_secret", "any"),
            ("scope", "https://vault.azure.net/.default"),
        ]))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let access_token = token["access_token"].as_str().expect("access_token");

    // The seeded vault answers with that token.
    let secrets: Value = http
        .get(format!("{vault}secrets?api-version=7.5"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("list secrets")
        .json()
        .await
        .expect("json");
    assert!(
        secrets["value"]
            .as_array()
            .is_some_and(|items| !items.is_empty()),
        "{secrets}"
    );

    // The printed key signs a Shared Key request to the printed account.
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("date");
    let version = "2021-08-06";
    let response = http
        .get(format!("{blob}?comp=list"))
        .header("x-ms-date", &date)
        .header("x-ms-version", version)
        .header(
            "authorization",
            shared_key(
                account_name,
                account["key"].as_str().expect("key"),
                &date,
                version,
                "/\ncomp:list",
            ),
        )
        .send()
        .await
        .expect("list containers");
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Name>reports</Name>"), "{body}");
    child.kill().await.expect("stop");
}

#[tokio::test]
async fn printed_env_lines_carry_the_same_information() {
    let (mut child, lines) = start(&["--print", "env"], 7).await;
    let env: BTreeMap<&str, &str> = lines
        .iter()
        .map(|line| line.split_once('=').expect("KEY=value"))
        .collect();
    let addr = env["ATG_EMULATOR_ADDR"];
    assert!(addr.parse::<SocketAddr>().is_ok(), "{addr}");
    assert!(std::path::Path::new(env["ATG_EMULATOR_CA"]).exists());
    assert_eq!(
        env["ATG_EMULATOR_TOKEN_ENDPOINT"],
        format!(
            "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
            env["ATG_EMULATOR_TENANT"]
        )
    );
    let args = env["ATG_EMULATOR_ATG_ARGS"];
    assert!(
        args.contains(&format!("--connect-to vault.azure.net={addr}")),
        "{args}"
    );
    child.kill().await.expect("stop");
}

#[tokio::test]
async fn arm_fault_flags_reach_the_runtime_configuration() {
    let (mut child, lines) = start(
        &[
            "--fault-rate",
            "0.1",
            "--fault-operations",
            "POST list,PUT config",
            "--arm-lost-answer-rate",
            "0.5",
            "--arm-lost-answer-operations",
            "PUT config",
            "--lost-answers",
            "500",
        ],
        1,
    )
    .await;
    let ready: Value = serde_json::from_str(&lines[0]).expect("json");
    let http = client_from(
        &strings(&ready["atg_args"]),
        ready["ca"].as_str().expect("ca"),
        &["management.azure.com".to_owned()],
    );
    let config: Value = http
        .get("https://management.azure.com/_emulator/config")
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(
        config["fault_operations"],
        json!(["POST list", "PUT config"])
    );
    assert_eq!(config["arm_lost_answers"]["rate"], 0.5);
    assert_eq!(
        config["arm_lost_answers"]["operations"],
        json!(["PUT config"])
    );
    assert_eq!(config["arm_lost_answers"]["kinds"], json!(["500"]));
    assert!(config["lost_answers"].is_null(), "Key Vault's stay off");
    child.kill().await.expect("stop");
}
