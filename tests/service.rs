//! `zonelog run` as an operator sees it, against the dev zone: readiness,
//! the named metric series, `status` and `changes` while it runs (served by
//! the running process), SIGTERM exiting 0 with nothing lost, then `flush`
//! and `logs cat` showing the same changes in a log object.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dev_zone, free_port, pipeline_config, unique_bucket, S3};

use common::zonelog_ok as zonelog;

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Starts `zonelog run` capturing `bucket` with `http_extra` in `[http]`.
fn start_run(
    zone: &common::DevZone,
    zone_name: &str,
    bucket: &str,
    http_extra: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    u16,
    std::process::Child,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("zonelog.toml");
    std::fs::write(
        &config,
        pipeline_config(zone, zone_name, &[bucket], dir.path(), port, http_extra),
    )
    .expect("config");
    let run = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start zonelog run");
    (dir, config, port, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_status_and_changes_and_stops_cleanly() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlsvc");
    let (_dir, config, port, mut run) = start_run(&zone, "svc-zone", &bucket, "");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "never ready");
    }
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );

    let client = zone.admin_client();
    let s3 = S3(&client);
    s3.create_bucket(&bucket).await;
    for n in 0..5 {
        s3.put(&bucket, &format!("obj-{n}"), b"x").await;
    }
    s3.delete(&bucket, "obj-0").await;

    // `changes` goes through the running process, which owns the index.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let out = text(&zonelog(
            &config,
            &["changes", "--json", "--bucket", &bucket],
        ));
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        if lines.len() >= 6 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(lines.len(), 6, "{lines:?}");
    let table = text(&zonelog(&config, &["changes", "--prefix", "obj-0"]));
    assert!(table.contains("put") && table.contains("delete"), "{table}");
    assert!(table.contains(&format!("{bucket}/obj-0")), "{table}");
    let far_future = text(&zonelog(
        &config,
        &["changes", "--json", "--from", "2200-01-01T00:00:00Z"],
    ));
    assert!(
        far_future.is_empty(),
        "the time window applies: {far_future}"
    );

    let status = text(&zonelog(&config, &["status"]));
    assert!(
        status.contains("rgw") && status.contains("following"),
        "{status}"
    );
    assert!(status.contains("index backlog: 6 changes"), "{status}");
    assert!(status.contains("control lease"), "{status}");

    let series = [
        r#"zonelog_changes_captured_total{source="rgw",op="put"} 5"#,
        r#"zonelog_changes_captured_total{source="rgw",op="delete"} 1"#,
        "zonelog_capture_lag_seconds",
        "zonelog_source_position_timestamp_seconds",
        r#"zonelog_index_entries{shard="0"}"#,
        r#"zonelog_index_bytes{shard="7"}"#,
        "zonelog_index_oldest_entry_age_seconds",
        "zonelog_collector_rounds_total",
        "zonelog_collector_round_seconds",
        "zonelog_collector_entries_total",
        "zonelog_collector_upload_errors_total",
        "zonelog_collector_lease_held 1",
    ];
    // Some series appear after the first full poll; wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if series.iter().all(|s| metrics.contains(s)) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for series in series {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }

    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = run.wait().expect("reap");
    assert!(status.success(), "SIGTERM exits 0: {status}");

    // The lease was released: flush in another process writes at once,
    // everything older than now − cutoff_margin (1 s): the delete's time is
    // when it happened, a moment ago.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let flushed = text(&zonelog(&config, &["flush"]));
    assert!(flushed.contains("6 changes"), "{flushed}");
    let logs = text(&zonelog(&config, &["logs", "cat"]));
    assert_eq!(logs.lines().count(), 6, "{logs}");
    assert!(logs.contains("\"zone\":\"svc-zone\""), "{logs}");
    let listing = text(&zonelog(&config, &["logs", "ls"]));
    assert!(listing.contains("svc-zone/"), "{listing}");
    let in_range = text(&zonelog(
        &config,
        &["logs", "ls", "--from", "2000-01-01T00:00:00Z"],
    ));
    assert_eq!(in_range, listing, "the window overlaps an open range");
    let later = text(&zonelog(
        &config,
        &["logs", "cat", "--from", "2200-01-01T00:00:00Z"],
    ));
    assert!(later.is_empty(), "no window ends after 2200: {later}");
}

/// `[http] token`: every endpoint but /healthz needs it, and zonelog's own
/// commands send it. `/changes` answers in bounded pages that name where
/// the next one starts; `zonelog changes` reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_requires_its_token_and_pages_changes() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlhttp");
    let (_dir, config, port, mut run) =
        start_run(&zone, "http-zone", &bucket, "token = \"h77p-s3cret\"");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get("/readyz", Some("h77p-s3cret"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in ["/metrics", "/status", "/changes", "/readyz"] {
        for token in [None, Some("wrong")] {
            let status = get(path, token).await.expect("request").status();
            assert_eq!(status, 401, "{path} with {token:?}");
        }
    }
    assert_eq!(get("/healthz", None).await.expect("healthz").status(), 200);

    let client = zone.admin_client();
    let s3 = S3(&client);
    s3.create_bucket(&bucket).await;
    for n in 0..5 {
        s3.put(&bucket, &format!("obj-{n}"), b"x").await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = loop {
        let out = text(&zonelog(&config, &["changes", "--json"]));
        if out.lines().count() >= 5 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(all.lines().count(), 5, "{all}");
    assert!(!all.contains("next_after"), "{all}");

    // Pages of two: two records, then where to go on.
    let mut after: Option<String> = None;
    let mut records = Vec::new();
    for _ in 0..3 {
        let path = match &after {
            Some(a) => format!("/changes?limit=2&after={a}"),
            None => "/changes?limit=2".to_string(),
        };
        let page = get(&path, Some("h77p-s3cret"))
            .await
            .expect("page")
            .text()
            .await
            .expect("body");
        let lines: Vec<&str> = page.lines().collect();
        let (last, rest) = lines.split_last().expect("a line");
        records.extend(rest.iter().map(|l| l.to_string()));
        match serde_json::from_str::<serde_json::Value>(last).expect("json")["next_after"].as_str()
        {
            Some(next) => after = Some(next.to_string()),
            None => {
                records.push(last.to_string());
                after = None;
            }
        }
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        records.join("\n"),
        all.trim_end(),
        "pages add up to the whole"
    );
    let status = get("/changes?limit=0", Some("h77p-s3cret"))
        .await
        .expect("bad");
    assert_eq!(status.status(), 400);

    let status = text(&zonelog(&config, &["status"]));
    assert!(status.contains("index backlog: 5 changes"), "{status}");
    // SAFETY: kill only signals the child we started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    assert!(run.wait().expect("wait").success());
}

/// A `zonelog run` child that is killed if the test panics before it
/// stopped it ([`stop_run`]): a failed test must not leave a capture
/// polling the zone under the tests that follow.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `zonelog run -c config` with its log in `log`, once `/readyz` answers;
/// returns the child and the HTTP base URL.
async fn run_until_ready(
    config: &std::path::Path,
    log: &std::path::Path,
    port: u16,
) -> (Running, String) {
    let run = Running(
        Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["run", "-c"])
            .arg(config)
            .env("ZONELOG_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start zonelog run"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status().is_success() {
                return (run, base);
            }
        }
        if Instant::now() > deadline {
            drop(run);
            panic!(
                "never ready: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// SIGTERM, which must exit 0; returns the run's log.
fn stop_run(run: &mut Running, log: &std::path::Path) -> String {
    Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    let exit = run.0.wait().expect("reap");
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(exit.success(), "SIGTERM exits 0: {exit}\n{log_text}");
    log_text
}

/// Every expected (key, op) is in the logs exactly once, and nothing else.
fn assert_each_once(
    logged: impl Iterator<Item = (String, String)>,
    expected: &[(String, &'static str)],
    log_text: &str,
) {
    let mut seen = std::collections::BTreeMap::<(String, String), usize>::new();
    let mut total = 0;
    for change in logged {
        *seen.entry(change).or_default() += 1;
        total += 1;
    }
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, op)| seen.get(&(key.clone(), op.to_string())) != Some(&1))
        .map(|(key, op)| format!("{key} {op}: {:?}", seen.get(&(key.clone(), op.to_string()))))
        .collect();
    assert!(
        wrong.is_empty(),
        "each change once ({} wrong): {:?}\n{log_text}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert_eq!(total, expected.len(), "nothing else in the logs");
}

/// The value of one series in a /metrics text, summed over its labels when
/// none are named (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(series).is_some_and(|rest| {
                rest.starts_with(' ') || (!series.contains('{') && rest.starts_with('{'))
            })
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// The /metrics page, which must be served whatever state the index is in.
async fn metrics(base: &str) -> String {
    let reply = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics");
    let status = reply.status();
    let text = reply.text().await.expect("metrics text");
    assert_eq!(status, 200, "/metrics answered {status}: {text}");
    text
}

/// Issue 16, faults: the log target is unreachable for a while (cut
/// through a proxy; `ZLTEST_OUTAGE_SECS`, 20 s by default, 600 for the
/// issue's ten minutes). Capture goes on, the backlog grows and is
/// reported (metrics, `status`), nothing is trimmed; once the target is
/// back every change lands, each in exactly one log object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_for_a_while_loses_nothing_and_lands_everything_once() {
    use common::target::{fresh, read_landed_logs, read_logs};
    use common::{put_delete_changes, spawn_put_delete_workload, CutProxy};
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(zone) = dev_zone() else { return };
    let outage = Duration::from_secs(
        std::env::var("ZLTEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let bucket = unique_bucket("zlout");
    let (target_cfg, target) = fresh(&zone, "out").await;
    let rgw = zone.rgw_addr();
    let proxy = CutProxy::start(rgw).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("zonelog.toml");
    std::fs::write(
        &config,
        format!(
            r#"zone = "out-zone"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "200ms"
[filter]
buckets = ["{bucket}"]
[index]
path = "{dir}/index"
shards = 8
[collector]
period = "1s"
cutoff_margin = "1s"
compression = "none"
[target]
endpoint = "http://127.0.0.1:{proxy}"
access_key = "{ak}"
secret_key = "{sk}"
bucket = "{target_bucket}"
prefix = "out"
[http]
listen = "127.0.0.1:{port}"
"#,
            endpoint = zone.endpoint,
            ak = zone.admin_access_key,
            sk = zone.admin_secret_key,
            dir = dir.path().display(),
            proxy = proxy.port,
            target_bucket = target_cfg.bucket.as_deref().expect("target bucket"),
        ),
    )
    .expect("config");
    let log = dir.path().join("run.log");
    let (mut run, base) = run_until_ready(&config, &log, port).await;
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_landed_logs(&target).await.is_empty() {
        assert!(Instant::now() < deadline, "no log object before the outage");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    proxy.cut();
    let cut_at = Instant::now();
    let before = metrics(&base).await;
    let objects_at_cut = read_landed_logs(&target).await.len();
    let captured = |m: &str| {
        metric(
            m,
            r#"zonelog_changes_captured_total{source="rgw",op="put"}"#,
        )
    };
    tokio::time::sleep(outage.min(Duration::from_secs(8))).await;
    let during = metrics(&base).await;
    assert!(
        metric(&during, "zonelog_collector_upload_errors_total")
            > metric(&before, "zonelog_collector_upload_errors_total"),
        "failed rounds are counted:\n{during}"
    );
    assert!(
        captured(&during) > captured(&before),
        "capture goes on while the target is down"
    );
    let backlog_during = metric(&during, "zonelog_index_entries");
    assert!(
        metric(&during, "zonelog_index_oldest_entry_age_seconds") >= 3.0,
        "the backlog's age is reported:\n{during}"
    );
    let status = text(&zonelog(&config, &["status"]));
    assert!(status.contains("index backlog:"), "{status}");
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    let late = metrics(&base).await;
    assert!(
        metric(&late, "zonelog_index_entries") > backlog_during,
        "the backlog grows: {backlog_during} then {}",
        metric(&late, "zonelog_index_entries")
    );
    assert!(
        read_landed_logs(&target).await.len() >= objects_at_cut,
        "nothing written meanwhile was lost"
    );

    proxy.restore();
    let restored = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let expected = put_delete_changes(written);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let records = read_landed_logs(&target).await;
        if records.len() >= expected.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let caught_up = restored.elapsed();
    let log_text = stop_run(&mut run, &log);
    // Stopped: every object has its manifest now.
    let records = read_logs(&target).await;
    assert_each_once(
        records
            .iter()
            .map(|(_, r)| (r.key.clone(), r.op.as_str().to_string())),
        &expected,
        &log_text,
    );
    assert!(
        log_text.contains("collector"),
        "the failed rounds are logged:\n{log_text}"
    );
    eprintln!(
        "target down {outage:?}: {} changes, each once; caught up {caught_up:?} after the target came back",
        expected.len()
    );
}

/// A small file system of its own (tmpfs) for one test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (as root, as CI runs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills what is left with one file; returns it, to remove later.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&block[..1]);
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Issue 16, faults: the index's disk fills up while changes keep coming.
/// Capture fails its commits with a clear error and does not move its
/// positions past what is not durable; once space is back it goes on by
/// itself, and every change lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_index_disk_stops_capture_until_space_returns_and_loses_nothing() {
    use common::{put_delete_changes, spawn_put_delete_workload};
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(zone) = dev_zone() else { return };
    let disk = SmallDisk::mount("24m");
    let bucket = unique_bucket("zlfull");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("zonelog.toml");
    let text_config = pipeline_config(&zone, "full-zone", &[&bucket], dir.path(), port, "")
        .replace(
            &format!("path = \"{}/index\"", dir.path().display()),
            &format!("path = \"{}/index\"", disk.path().display()),
        )
        .replace("period = \"1h\"", "period = \"1s\"");
    std::fs::write(&config, text_config).expect("config");
    let log = dir.path().join("run.log");
    let (mut run, base) = run_until_ready(&config, &log, port).await;
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    let filler = disk.fill();
    let before = metrics(&base).await;
    // Until a commit needs space the file no longer has (redb reuses its
    // free pages first), and a few failed polls more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let during = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = metrics(&base).await;
        let failed = metric(&during, "zonelog_capture_errors_total")
            - metric(&before, "zonelog_capture_errors_total");
        if failed >= 3.0 || Instant::now() > deadline {
            break during;
        }
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        metric(&during, "zonelog_capture_errors_total")
            > metric(&before, "zonelog_capture_errors_total"),
        "failed commits are counted:\n{log_text}\n{}",
        during
            .lines()
            .filter(|l| l.starts_with("zonelog_capture") || l.starts_with("zonelog_index_entries"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        log_text.to_lowercase().contains("no space left"),
        "the log names the cause:\n{log_text}"
    );

    std::fs::remove_file(&filler).expect("free the disk");
    let freed = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let expected = put_delete_changes(written);
    // Everything reaches the log target (a directory on another disk).
    let logs_dir = dir.path().join("logs");
    let read_all = || -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut stack = vec![logs_dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".jsonl.zst") {
                    let bytes =
                        zstd::decode_all(std::fs::File::open(&p).expect("open")).expect("zstd");
                    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        out.push(serde_json::from_slice(line).expect("record"));
                    }
                }
            }
        }
        out
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let records = loop {
        let records = read_all();
        if records.len() >= expected.len() || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let caught_up = freed.elapsed();
    let log_text = stop_run(&mut run, &log);
    assert_each_once(
        records.iter().map(|r| {
            let field = |name: &str| r[name].as_str().unwrap_or_default().to_string();
            (field("key"), field("op"))
        }),
        &expected,
        &log_text,
    );
    eprintln!(
        "index disk full: {} changes, each once; caught up {caught_up:?} after space returned",
        expected.len()
    );
}

/// `zonelog --version` names the version, the commit it was built from
/// and what is built in (issue 17).
#[test]
fn version_names_the_commit_and_the_backends() {
    let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .arg("--version")
        .output()
        .expect("zonelog --version");
    assert!(out.status.success());
    let text = text(&out);
    let first = text.lines().next().unwrap_or_default();
    let prefix = format!("zonelog {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = first
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{first}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert!(commit.starts_with(&head), "{commit} is not HEAD {head}"),
        None => assert_eq!(commit, "unknown"),
    }
    for built_in in [
        "index backends: embedded (redb), rados",
        "capture sources: rgw",
        "log targets: s3, directory",
    ] {
        assert!(text.contains(built_in), "{built_in:?} in {text}");
    }
}

/// `zonelog man` and `zonelog completions SHELL` print what the Debian
/// package installs: a man page naming the subcommands and a completion
/// script per shell (issue 17).
#[test]
fn man_page_and_completions_come_from_the_command_line() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(args)
            .output()
            .expect("zonelog runs");
        assert!(out.status.success(), "zonelog {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let man = run(&["man"]);
    assert!(man.starts_with(".ie"), "roff: {man:.200}");
    assert!(man.contains(".TH zonelog 1"), "{man:.400}");
    for subcommand in ["run", "config", "backup", "completions"] {
        assert!(man.contains(subcommand), "{subcommand} in {man}");
    }
    for (shell, marker) in [
        ("bash", "complete -F _zonelog"),
        ("zsh", "#compdef zonelog"),
        ("fish", "complete -c zonelog"),
    ] {
        let script = run(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script:.300}");
        assert!(script.contains("backup"), "{shell}: {script:.300}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["completions", "tcsh"])
        .output()
        .expect("zonelog runs");
    assert!(!out.status.success());
}

/// `[sources.rgw.rados]`: `zonelog run` probes the zone's log objects, so
/// an idle poll reads few data-log shards, and every change still lands
/// once. A pool that does not exist stops `run` at once, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_the_rados_probes_captures_and_polls_little() {
    let Some(zone) = dev_zone() else { return };
    let conf = std::env::var("CEPH_CONF").expect("CEPH_CONF (scripts/ceph-dev env)");
    let rados = |log_pool: &str| {
        format!(
            "[sources.rgw.rados]\nceph_conf = {conf:?}\nuser = \"admin\"\nlog_pool = {log_pool:?}\n\
             sweep_interval = \"500ms\"\n"
        )
    };
    let bucket = unique_bucket("zlsvcprobe");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = dir.path().join("zonelog.toml");
    let log = dir.path().join("run.log");

    std::fs::write(
        &config,
        pipeline_config(
            &zone,
            "probe-zone",
            &[&bucket],
            dir.path(),
            port,
            &rados("no-such-pool"),
        ),
    )
    .expect("config");
    let refused = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .expect("run zonelog");
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success(), "a missing pool stops run");
    assert!(
        said.contains("sources.rgw.rados") && said.contains("no-such-pool"),
        "{said}"
    );

    std::fs::write(
        &config,
        pipeline_config(
            &zone,
            "probe-zone",
            &[&bucket],
            dir.path(),
            port,
            &rados("default.rgw.log"),
        ),
    )
    .expect("config");
    let (mut run, base) = run_until_ready(&config, &log, port).await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    s3.create_bucket(&bucket).await;
    for n in 0..5 {
        s3.put(&bucket, &format!("obj-{n}"), b"x").await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&metrics(&base).await, "zonelog_changes_captured_total") < 5.0 {
        assert!(Instant::now() < deadline, "changes never captured");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Long enough for two sweeps when RGW answers slowly, as it does right
    // after the capture tests, whose buckets it still renews in the data log.
    let before = metrics(&base).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = metrics(&base).await;
    let sweeps = metric(&after, "zonelog_capture_probe_sweeps_total")
        - metric(&before, "zonelog_capture_probe_sweeps_total");
    let reads = metric(&after, "zonelog_capture_datalog_shard_reads_total")
        - metric(&before, "zonelog_capture_datalog_shard_reads_total");
    let shards = zonelog::capture::rgw::RgwAdmin::new(zone.admin_client())
        .datalog_shard_count()
        .await
        .expect("data-log shards");
    assert!(sweeps >= 2.0, "a sweep every 500 ms: {sweeps} in 6 s");
    // Without the probe each sweep reads every shard. Other tests write
    // meanwhile, and RGW renews the entries of recently written buckets,
    // so some shards do change.
    assert!(
        reads < sweeps * f64::from(shards) / 2.0,
        "{reads} data-log shard reads in {sweeps} sweeps of {shards} shards"
    );
    assert_eq!(metric(&after, "zonelog_capture_probe_failures_total"), 0.0);
    assert_eq!(
        metric(&after, "zonelog_changes_captured_total"),
        5.0,
        "each change once"
    );
    stop_run(&mut run, &log);
}
