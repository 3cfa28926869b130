//! Storage replication benchmark. Prints figures; asserts nothing about time.
//!
//! 1. Wall time copying blobs of mixed sizes between two Azurite accounts: atg (server-side
//!    copies, sent to production host names and reaching Azurite through the testkit's gateway
//!    with `--connect-to`, as in the tests) against `rclone copy` (Debian's 1.60; it streams
//!    every byte through itself, straight to Azurite with an account SAS), in the same run, from
//!    the same source, each into a fresh account. Target: atg ≤ 0.5× rclone.
//!    Sizes, seeded: 70 % 1–16 KiB, 25 % 16 KiB–1 MiB, 5 % 1–4 MiB, log-uniform within each
//!    band (mean ≈ 175 KiB; 10,000 blobs ≈ 1.7 GiB).
//! 2. Peak memory (`VmHWM`, `/usr/bin/time -f %M`) of atg copying many small blobs (512 B–2 KiB)
//!    against copying few. Target: ≤ 1.5× (memory must not grow with the number of blobs).
//!
//! Read the wall times with the CPU line printed under each: Azurite is one Node process on the
//! same 2 cores, so its server-side copy is done by the machine that is measured (on Azure it
//! runs in the service), and both tools end up waiting for Azurite.
//!
//! Before a figure is printed, each copy is checked by a reader that is neither tool (a REST
//! listing straight from Azurite): every name, size and Content-MD5 of the source is in the
//! target, nothing else is.
//!
//! Run: `cargo bench --bench storage`. Sizes (the defaults take about 2.5 minutes on 2 cores):
//! `ATG_BENCH_STORAGE_BLOBS` (default 2,000; the target is stated for 10,000),
//! `ATG_BENCH_STORAGE_MEMORY_FEW` (1,000), `ATG_BENCH_STORAGE_MEMORY_MANY` (default 10,000; the
//! target is stated for 100,000, which Azurite 3.35 cannot hold in practice: every blob lookup
//! scans the whole account in its in-memory store, so seeding slows quadratically; measured
//! here, 49,000 blobs after 14 minutes, 96,000 after 51, then it answered 408),
//! `ATG_BENCH_STORAGE_CONCURRENCY` (32: atg's `--concurrency` and rclone's `--transfers` and
//! `--checkers`).
//! Needs Azurite (`scripts/azurite.sh install`), python3 with azure-storage-blob (signs the
//! SAS rclone uses) and rclone (`scripts/bench-setup.sh`).

// A benchmark prints its figures and fails loudly on a broken setup; sizes and figures are
// converted between integers and floats for display only.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::time::Instant;

use atg_testkit::azurite::Azurite;
use atg_testkit::mint_token;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use serde_json::Value;

use common::{env_count, read_time_file, StorageStand, CLIENT, TENANT};

mod common;

const CONTAINER: &str = "bench";
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Azurite's blob API version for the bench's own requests (seeding, listing).
const VERSION: &str = "2021-08-06";

/// A size drawn log-uniformly from `low..=high`.
fn log_uniform(rng: &mut StdRng, low: u64, high: u64) -> u64 {
    let (low, high) = (low as f64, high as f64);
    (low * (high / low).powf(rng.random::<f64>())).round() as u64
}

/// The mixed distribution of part 1.
fn mixed_size(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..100) {
        0..70 => log_uniform(rng, KIB, 16 * KIB),
        70..95 => log_uniform(rng, 16 * KIB, MIB),
        _ => log_uniform(rng, MIB, 4 * MIB),
    }
}

/// Plain REST to Azurite with a bearer token of the bench's own (Azurite's `--oauth basic`
/// checks claims, not signatures): seeding and checking, never atg's code.
struct Rest {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    fn new(azurite: &Azurite) -> Rest {
        let ca = std::fs::read(&azurite.ca_path).unwrap();
        Rest {
            client: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .http1_only()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            base: format!("https://127.0.0.1:{}", azurite.blob.port()),
            token: mint_token(TENANT, CLIENT, "https://storage.azure.com"),
        }
    }

    fn put(&self, url: &str) -> reqwest::RequestBuilder {
        self.client
            .put(url)
            .bearer_auth(&self.token)
            .header("x-ms-version", VERSION)
    }

    /// Creates `account/container` and fills it with `sizes.len()` blobs; returns the bytes.
    async fn seed(&self, account: &str, sizes: &[u64]) -> u64 {
        let container = format!("{}/{account}/{CONTAINER}", self.base);
        let created = self
            .put(&format!("{container}?restype=container"))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "create container: {created:?}"
        );
        // One random buffer; each blob is a window of it at its own offset.
        let mut pool = vec![0u8; (8 * MIB) as usize];
        StdRng::seed_from_u64(3).fill_bytes(&mut pool);
        let pool = &pool;
        let container = &container;
        futures::stream::iter(sizes.iter().enumerate())
            .map(|(index, &size)| async move {
                let offset = (index * 7919) % (4 * MIB) as usize;
                let body = &pool[offset..offset + size as usize];
                // Azurite resets a connection now and then under this load, and answers 408
                // when a request waited too long for it: try again, up to four more times.
                let mut attempts = 0;
                let response = loop {
                    attempts += 1;
                    let sent = self
                        .put(&format!("{container}/b/{index:07}"))
                        .header("x-ms-blob-type", "BlockBlob")
                        .body(body.to_vec())
                        .send()
                        .await;
                    match sent {
                        Err(error) if attempts < 5 && !error.is_status() => {}
                        Ok(response) if attempts < 5 && response.status() == 408 => {}
                        sent => break sent.unwrap(),
                    }
                };
                assert!(response.status().is_success(), "put blob: {response:?}");
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        sizes.iter().sum()
    }

    /// Every blob of `account/container`: name → (size, Content-MD5).
    async fn list(&self, account: &str) -> BTreeMap<String, (u64, String)> {
        let mut blobs = BTreeMap::new();
        let mut marker = String::new();
        loop {
            let mut url = url::Url::parse(&format!("{}/{account}/{CONTAINER}", self.base)).unwrap();
            url.query_pairs_mut()
                .append_pair("restype", "container")
                .append_pair("comp", "list")
                .append_pair("maxresults", "5000")
                .append_pair("marker", &marker);
            let response = self
                .client
                .get(url)
                .bearer_auth(&self.token)
                .header("x-ms-version", VERSION)
                .send()
                .await
                .unwrap();
            if response.status() == 404 {
                return blobs;
            }
            assert!(response.status().is_success(), "list blobs: {response:?}");
            let body = response.text().await.unwrap();
            let document = roxmltree::Document::parse(&body).unwrap();
            let text = |node: roxmltree::Node<'_, '_>, name: &str| {
                node.descendants()
                    .find(|n| n.has_tag_name(name))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_owned()
            };
            for blob in document.descendants().filter(|n| n.has_tag_name("Blob")) {
                blobs.insert(
                    text(blob, "Name"),
                    (
                        text(blob, "Content-Length").parse().unwrap(),
                        text(blob, "Content-MD5"),
                    ),
                );
            }
            marker = text(document.root_element(), "NextMarker");
            if marker.is_empty() {
                return blobs;
            }
        }
    }

    /// Panics unless `target` holds exactly the source's blobs (names, sizes, Content-MD5).
    async fn verify(&self, source: &str, target: &str, tool: &str) -> (usize, u64) {
        let (expected, actual) = (self.list(source).await, self.list(target).await);
        let bytes = actual.values().map(|(size, _)| size).sum();
        if expected != actual {
            let missing = expected.keys().filter(|k| !actual.contains_key(*k)).count();
            let differing = expected
                .iter()
                .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
                .count();
            panic!(
                "{tool} did not copy every blob: source {} blobs, target {} ({missing} missing, {differing} differing)",
                expected.len(),
                actual.len()
            );
        }
        assert!(
            expected.values().all(|(_, md5)| !md5.is_empty()),
            "the source has blobs without Content-MD5: the check would be by size only"
        );
        (actual.len(), bytes)
    }
}

/// One tool run: wall time, its peak RSS and CPU, and the CPU Azurite and the gateway (this
/// process) spent meanwhile.
struct Measured {
    seconds: f64,
    peak_kib: u64,
    cpu: f64,
    azurite_cpu: f64,
    gateway_cpu: f64,
}

impl Measured {
    fn cpu_line(&self) -> String {
        format!(
            "CPU s: tool {:.1}, Azurite {:.1}, gateway {:.1}; peak RSS {:.0} MiB",
            self.cpu,
            self.azurite_cpu,
            self.gateway_cpu,
            self.peak_kib as f64 / 1024.0
        )
    }
}

struct Bench {
    stand: StorageStand,
    concurrency: usize,
}

impl std::ops::Deref for Bench {
    type Target = StorageStand;

    fn deref(&self) -> &StorageStand {
        &self.stand
    }
}

impl Bench {
    async fn start(accounts: &[&str], concurrency: usize) -> Bench {
        Bench {
            stand: StorageStand::start(accounts).await,
            concurrency,
        }
    }

    /// Runs atg under /usr/bin/time; returns the measurement and the report.
    async fn atg(&self, source: &str, target: &str) -> (Measured, Value) {
        let time_file = self.dir.path().join(format!("{target}.time"));
        let concurrency = self.concurrency.to_string();
        let mut command = tokio::process::Command::from(self.atg_command(
            (source, target),
            &["--concurrency", &concurrency],
            ("%M %U %S", &time_file),
        ));
        let meter = CpuMeter::start();
        let started = Instant::now();
        let output = command.output().await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let (azurite_cpu, gateway_cpu) = meter.stop();
        // The gateway logs every request; a long run should not make the bench itself grow.
        self.gateway.clear_requests();
        assert!(
            output.status.success(),
            "atg failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["totals"]["items"]["failed"], 0, "{report:#}");
        let (peak_kib, cpu) = read_time_file(&time_file);
        let measured = Measured {
            seconds,
            peak_kib,
            cpu,
            azurite_cpu,
            gateway_cpu,
        };
        (measured, report)
    }

    /// An account SAS for rclone, signed by Microsoft's Python SDK (not by atg).
    fn account_sas(&self, account: &str) -> String {
        let key = &self.azurite.account(account).unwrap().key;
        let output = std::process::Command::new("python3")
            .args(["-c", "import sys, datetime\nfrom azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions\nprint(generate_account_sas(sys.argv[1], sys.argv[2], ResourceTypes(service=True, container=True, object=True), AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True, update=True), datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)))"])
            .args([account, key])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "signing a SAS with python3 failed (run scripts/bench-setup.sh): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// `rclone copy source:bench target:bench`, one remote per account (`sas_url`, the form
    /// rclone 1.60 accepts for Azurite), straight to Azurite's https port.
    async fn rclone(&self, source: &str, target: &str) -> Measured {
        let port = self.azurite.blob.port();
        let config = self.dir.path().join("rclone.conf");
        let remote = |name: &str, account: &str| {
            format!(
                "[{name}]\ntype = azureblob\nsas_url = https://127.0.0.1:{port}/{account}?{}\n\n",
                self.account_sas(account)
            )
        };
        std::fs::write(
            &config,
            remote("source", source) + &remote("target", target),
        )
        .unwrap();
        let concurrency = self.concurrency.to_string();
        let time_file = self.dir.path().join("rclone.time");
        let meter = CpuMeter::start();
        let started = Instant::now();
        let output = tokio::process::Command::new("/usr/bin/time")
            .args(["-f", "%M %U %S", "-o"])
            .arg(&time_file)
            .arg("rclone")
            .arg("copy")
            .arg(format!("source:{CONTAINER}"))
            .arg(format!("target:{CONTAINER}"))
            .arg("--config")
            .arg(&config)
            .arg("--ca-cert")
            .arg(&self.azurite.ca_path)
            .args(["--transfers", &concurrency, "--checkers", &concurrency])
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(["--contimeout", "5s", "--timeout", "20s", "-q"])
            .output()
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let (azurite_cpu, gateway_cpu) = meter.stop();
        assert!(
            output.status.success(),
            "rclone failed ({}; is it installed? scripts/bench-setup.sh): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let (peak_kib, cpu) = read_time_file(&time_file);
        Measured {
            seconds,
            peak_kib,
            cpu,
            azurite_cpu,
            gateway_cpu,
        }
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// The Azurite (node) process: this process's child that is not a tool under test.
fn azurite_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(')')?;
            let parent = rest.split_whitespace().nth(1)?;
            (parent == me && name == "node").then_some(pid)
        })
}

/// CPU seconds of Azurite and of this process (the gateway) over a step.
struct CpuMeter {
    azurite: Option<u32>,
    start: (f64, f64),
}

impl CpuMeter {
    fn start() -> CpuMeter {
        let azurite = azurite_pid();
        CpuMeter {
            azurite,
            start: (
                azurite.map_or(0.0, cpu_seconds),
                cpu_seconds(std::process::id()),
            ),
        }
    }

    /// (Azurite, gateway) CPU seconds since start.
    fn stop(&self) -> (f64, f64) {
        (
            self.azurite.map_or(0.0, cpu_seconds) - self.start.0,
            cpu_seconds(std::process::id()) - self.start.1,
        )
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

fn tally(report: &Value) -> String {
    report["resources"][0]["items"]
        .as_array()
        .and_then(|items| {
            items.iter().find_map(|item| {
                item["notes"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|note| note.starts_with("blobs: "))
            })
        })
        .unwrap_or("no blob tally in the report")
        .to_owned()
}

async fn throughput(blobs: usize, concurrency: usize) {
    let bench = Bench::start(&["benchsrc", "benchatg", "benchrcl"], concurrency).await;
    let rest = Rest::new(&bench.azurite);
    let mut rng = StdRng::seed_from_u64(42);
    let sizes: Vec<u64> = (0..blobs).map(|_| mixed_size(&mut rng)).collect();
    let started = Instant::now();
    let bytes = rest.seed("benchsrc", &sizes).await;
    println!(
        "storage/mixed-sizes: {blobs} blobs, {:.1} MiB (70% 1-16 KiB, 25% 16 KiB-1 MiB, 5% 1-4 MiB; seeded in {:.1} s)",
        mib(bytes),
        started.elapsed().as_secs_f64()
    );

    let (atg, report) = bench.atg("benchsrc", "benchatg").await;
    let (count, copied) = rest.verify("benchsrc", "benchatg", "atg").await;
    println!(
        "  atg:     {:8.2} s  {:7.1} MiB/s  ({count} blobs, {:.1} MiB verified; {}; --concurrency {concurrency})",
        atg.seconds,
        mib(copied) / atg.seconds,
        mib(copied),
        tally(&report)
    );
    println!("           {}", atg.cpu_line());

    let rclone = bench.rclone("benchsrc", "benchrcl").await;
    let (count, copied) = rest.verify("benchsrc", "benchrcl", "rclone").await;
    println!(
        "  rclone:  {:8.2} s  {:7.1} MiB/s  ({count} blobs, {:.1} MiB verified; rclone 1.60 copy, --transfers/--checkers {concurrency}, through the client)",
        rclone.seconds,
        mib(copied) / rclone.seconds,
        mib(copied)
    );
    println!(
        "           {} (no gateway on rclone's path)",
        rclone.cpu_line()
    );
    println!(
        "  ratio:   {:8.2}x  (atg / rclone wall time; target <= 0.5x)",
        atg.seconds / rclone.seconds
    );
    // Why the ratio is what it is here: both tools wait for the one Azurite process, and a
    // server-side copy costs Azurite about what streaming costs it (it checks each cross-account
    // copy source with an https request to itself before copying the blob's references).
    let per_blob = |cpu: f64| cpu * 1000.0 / blobs as f64;
    println!(
        "  Azurite CPU per blob: atg {:.1} ms (a copy request + Azurite's own copy-source check), rclone {:.1} ms (a GET and a PUT); client CPU per blob: atg {:.2} ms, rclone {:.2} ms",
        per_blob(atg.azurite_cpu),
        per_blob(rclone.azurite_cpu),
        per_blob(atg.cpu),
        per_blob(rclone.cpu)
    );
    bench.stand.stop().await;
}

async fn memory(few: usize, many: usize, concurrency: usize) {
    let bench = Bench::start(&["fewsrc", "fewdst", "manysrc", "manydst"], concurrency).await;
    let rest = Rest::new(&bench.azurite);
    let mut rng = StdRng::seed_from_u64(7);
    let mut peaks = Vec::new();
    for (count, source, target) in [(few, "fewsrc", "fewdst"), (many, "manysrc", "manydst")] {
        let sizes: Vec<u64> = (0..count)
            .map(|_| rng.random_range(512..=2 * KIB))
            .collect();
        let started = Instant::now();
        rest.seed(source, &sizes).await;
        let seeded = started.elapsed().as_secs_f64();
        let (atg, report) = bench.atg(source, target).await;
        let (verified, bytes) = rest.verify(source, target, "atg").await;
        println!("storage/memory: {count} small blobs (512 B-2 KiB; seeded in {seeded:.1} s)");
        println!(
            "  atg:      {:8.2} s  ({:.0} blobs/s; {verified} blobs, {:.1} MiB verified; {})",
            atg.seconds,
            verified as f64 / atg.seconds,
            mib(bytes),
            tally(&report)
        );
        println!("            {}", atg.cpu_line());
        println!("  peak RSS: {:8.1} MiB", atg.peak_kib as f64 / 1024.0);
        peaks.push(atg.peak_kib);
    }
    println!(
        "storage/memory: peak RSS at {many} blobs / at {few} blobs = {:.2}x  (target <= 1.5x)",
        peaks[1] as f64 / peaks[0] as f64
    );
    bench.stand.stop().await;
}

fn rclone_present() -> bool {
    std::process::Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::main]
async fn main() {
    let blobs = env_count("ATG_BENCH_STORAGE_BLOBS", 2_000);
    let few = env_count("ATG_BENCH_STORAGE_MEMORY_FEW", 1_000);
    let many = env_count("ATG_BENCH_STORAGE_MEMORY_MANY", 10_000);
    let concurrency = env_count("ATG_BENCH_STORAGE_CONCURRENCY", 32);
    // Fail before seeding anything, with what to run.
    assert!(
        rclone_present(),
        "rclone is not installed: run scripts/bench-setup.sh (apt-get install rclone)"
    );
    if blobs > 0 {
        throughput(blobs, concurrency).await;
    }
    if few > 0 && many > 0 {
        memory(few, many, concurrency).await;
    }
}
