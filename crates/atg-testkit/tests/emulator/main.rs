//! Behaviour of the emulator as seen over HTTPS: challenge flow, paging, soft delete, keys,
//! certificates, throttling, fault injection (before a request and lost answers after a write),
//! forbidden vaults, the request log, ARM and tokens.

mod access;
mod arm;
mod certificates;
mod controls;
mod keys;
mod secrets;

use atg_testkit::kv_rest::test_http_client;
use atg_testkit::{mint_token, Emulator, EmulatorOptions};

const HOSTS: [&str; 5] = [
    "kv1.vault.azure.net",
    "kv2.vault.azure.net",
    "kv3.vault.azure.cn",
    "login.microsoftonline.com",
    "management.azure.com",
];

async fn start() -> (Emulator, reqwest::Client) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("start emulator");
    let http = test_http_client(emulator.ca_pem(), emulator.addr(), &HOSTS).expect("client");
    (emulator, http)
}

fn kv_token(emulator: &Emulator, vault: &str) -> String {
    mint_token(
        &emulator.tenant_of(vault),
        "test-client",
        "https://vault.azure.net",
    )
}
