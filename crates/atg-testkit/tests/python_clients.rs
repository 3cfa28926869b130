//! The official Azure Key Vault Python clients (azure-keyvault-secrets, -keys, -certificates) run
//! against the emulator unchanged, apart from trusting the test CA and resolving vault hosts to it.
//! Missing packages fail the test loudly: a silent skip would hide a broken setup.

use std::process::Stdio;

use atg_testkit::{mint_token, Emulator, EmulatorOptions};

#[tokio::test]
async fn official_python_clients_work_against_the_emulator() {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("start emulator");
    let dir = std::env::temp_dir().join(format!("atg-testkit-python-{}", std::process::id()));
    let ca = emulator.write_ca(&dir).expect("write ca");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kv_clients.py");
    let token = mint_token(
        &emulator.tenant_of("pyvault"),
        "python-client",
        "https://vault.azure.net",
    );

    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("ATG_EMULATOR_ADDR", emulator.addr().to_string())
        .env("ATG_EMULATOR_CA", &ca)
        .env("ATG_EMULATOR_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("python3 must be installed to run the official-client test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(3),
        "the azure-keyvault python packages are missing\nhint: run scripts/setup.sh\n{stderr}"
    );
    assert!(
        output.status.success(),
        "python clients failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.trim_end().ends_with("ok"), "stdout:\n{stdout}");
    let _ = std::fs::remove_dir_all(dir);
    emulator.shutdown().await;
}
