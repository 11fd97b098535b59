//! `zonelog backup` and `zonelog verify` end to end on the dev zone: the
//! zone's changes are captured by `zonelog run`, written to log objects by
//! `zonelog flush`, then copied to destination buckets owned by the second
//! user (or a directory) and compared with the source.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dev_zone, free_port, pipeline_config, unique_bucket, DevZone, S3};
use reqwest::Method;
use zonelog::capture::rgw::admin::encode_path;

struct Pipeline {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Pipeline {
    /// A config for capture of `buckets`, log objects in a directory, and a
    /// backup with `backup_section` (TOML for `[backup]` and below).
    fn new(zone: &DevZone, buckets: &[&str], backup_section: &str) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("zonelog.toml");
        std::fs::write(
            &config,
            pipeline_config(zone, "bk-zone", buckets, dir.path(), port, backup_section),
        )
        .expect("config");
        Pipeline { dir, config, port }
    }

    /// A copy of the config whose backup goes to `dest_root/<policy>`
    /// with that policy (the config's own is `mirror` into `mirror_dir`).
    fn policy_config(&self, mirror_dir: &Path, dest_root: &Path, policy: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let config = self.dir.path().join(format!("{policy}.toml"));
        std::fs::write(
            &config,
            text.replace(
                &mirror_dir.display().to_string(),
                &dest_root.join(policy).display().to_string(),
            )
            .replace("policy = \"mirror\"", &format!("policy = \"{policy}\"")),
        )
        .expect("policy config");
        config
    }

    fn zonelog(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .env("ZONELOG_LOG", "warn")
            .output()
            .expect("run zonelog")
    }

    fn zonelog_ok(&self, args: &[&str]) -> String {
        let out = self.zonelog(args);
        assert!(
            out.status.success(),
            "zonelog {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    async fn start(&self) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["run", "-c"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start zonelog run");
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let url = format!("http://127.0.0.1:{}/readyz", self.port);
            if let Ok(r) = reqwest::get(url).await {
                if r.status().is_success() {
                    break true;
                }
            }
            if Instant::now() >= deadline {
                break false;
            }
        };
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zonelog run never became ready");
        }
        child
    }

    /// Waits until the running capture has at least `n` changes of
    /// `bucket`, stops it, and writes the log objects.
    async fn capture_and_flush(&self, mut run: Child, counts: &[(&str, usize)]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        for (bucket, n) in counts {
            loop {
                let out = self.zonelog_ok(&["changes", "--json", "--bucket", bucket]);
                if out.lines().count() >= *n {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {} of {n} changes of {bucket} captured",
                    out.lines().count()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Command::new("kill")
            .args(["-TERM", &run.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(run.wait().expect("reap").success());
        // Past the cutoff margin, so the flush takes every change.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        self.zonelog_ok(&["flush"]);
    }
}

async fn put_with(s3: &S3<'_>, bucket: &str, key: &str, body: &[u8], headers: &[(&str, &str)]) {
    let url = s3.0.url(
        &format!("/{}/{}", encode_path(bucket), encode_path(key)),
        &[],
    );
    s3.0.send_with_headers(Method::PUT, url, headers, body.to_vec(), "put with headers")
        .await
        .expect("put");
}

async fn head(s3: &S3<'_>, bucket: &str, key: &str) -> Option<reqwest::header::HeaderMap> {
    let url = s3.0.url(
        &format!("/{}/{}", encode_path(bucket), encode_path(key)),
        &[],
    );
    match s3.0.send(Method::HEAD, url, Vec::new(), "head").await {
        Ok(reply) => Some(reply.headers),
        Err(_) => None,
    }
}

async fn get(s3: &S3<'_>, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let url = s3.0.url(
        &format!("/{}/{}", encode_path(bucket), encode_path(key)),
        &[],
    );
    s3.0.send(Method::GET, url, Vec::new(), "get")
        .await
        .ok()
        .map(|r| r.body.to_vec())
}

fn s3_backup_section(zone: &DevZone, state_bucket: &str, extra: &str) -> String {
    format!(
        r#"[backup]
part_size = "5MiB"
multipart_threshold = "6MiB"
batch = 7
{extra}
[backup.source]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
[backup.destination]
endpoint = "{endpoint}"
access_key = "{uak}"
secret_key = "{usk}"
bucket_template = "{{bucket}}-bk"
state_bucket = "{state_bucket}"
"#,
        endpoint = zone.endpoint,
        ak = zone.admin_access_key,
        sk = zone.admin_secret_key,
        uak = zone.user_access_key,
        usk = zone.user_secret_key,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_what_changed_and_verify_agrees() {
    let Some(zone) = dev_zone() else { return };
    let plain = unique_bucket("zlbk");
    let versioned = unique_bucket("zlbkv");
    let state = unique_bucket("zlbks");
    let pipeline = Pipeline::new(
        &zone,
        &[&plain, &versioned],
        &s3_backup_section(&zone, &state, ""),
    );
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    let user = zone.user_client();
    let dest = S3(&user);
    let run = pipeline.start().await;

    s3.create_bucket(&plain).await;
    s3.create_bucket(&versioned).await;
    s3.enable_versioning(&versioned).await;
    let odd_keys = [
        "sp ace.txt",
        "per%cent",
        "plus+sign",
        "uni-ü-😀",
        "_leading",
        "line\nbreak",
        "dir/",
        "a//b",
    ];
    for key in odd_keys {
        s3.put(&plain, key, key.as_bytes()).await;
    }
    put_with(
        &s3,
        &plain,
        "typed.json",
        b"{}",
        &[
            ("content-type", "application/json"),
            ("x-amz-meta-owner", "team-blue"),
        ],
    )
    .await;
    for n in 0..5 {
        s3.put(&plain, &format!("obj-{n}"), format!("first {n}").as_bytes())
            .await;
    }
    s3.put(&plain, "obj-1", b"second 1").await;
    s3.delete(&plain, "obj-2").await;
    s3.copy(&plain, "obj-3", "obj-3-copy").await;
    s3.multipart(&plain, "big", 3).await;
    // Versioned: overwrite, delete (marker), and removing the newest
    // version, which makes the older one current again.
    s3.put(&versioned, "doc", b"doc v1").await;
    s3.put(&versioned, "doc", b"doc v2").await;
    s3.put(&versioned, "gone", b"soon deleted").await;
    s3.delete(&versioned, "gone").await;
    s3.put(&versioned, "back", b"back v1").await;
    let newest = s3
        .put(&versioned, "back", b"back v2")
        .await
        .expect("version id");
    s3.delete_version(&versioned, "back", Some(&newest)).await;

    pipeline
        .capture_and_flush(run, &[(&plain, 18), (&versioned, 7)])
        .await;
    let out = pipeline.zonelog_ok(&["backup", "--once"]);
    assert!(out.contains("changes"), "summary printed: {out}");
    let verify = pipeline.zonelog(&["verify"]);
    assert!(
        verify.status.success(),
        "verify after backup: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let plain_bk = format!("{plain}-bk");
    let versioned_bk = format!("{versioned}-bk");
    for key in odd_keys {
        assert_eq!(
            get(&dest, &plain_bk, key).await.as_deref(),
            Some(key.as_bytes()),
            "{key:?} copied byte for byte"
        );
    }
    assert_eq!(
        get(&dest, &plain_bk, "obj-1").await.as_deref(),
        Some(&b"second 1"[..])
    );
    assert_eq!(
        get(&dest, &plain_bk, "obj-2").await,
        None,
        "delete mirrored"
    );
    assert_eq!(
        get(&dest, &plain_bk, "obj-3-copy").await.as_deref(),
        Some(&b"first 3"[..])
    );
    let big = get(&dest, &plain_bk, "big")
        .await
        .expect("multipart object copied");
    assert_eq!(big.len(), 2 * (5 << 20) + 1000);
    let typed = head(&dest, &plain_bk, "typed.json")
        .await
        .expect("typed copied");
    assert_eq!(typed.get("content-type").unwrap(), "application/json");
    assert_eq!(typed.get("x-amz-meta-owner").unwrap(), "team-blue");
    assert_eq!(
        get(&dest, &versioned_bk, "doc").await.as_deref(),
        Some(&b"doc v2"[..])
    );
    assert_eq!(
        get(&dest, &versioned_bk, "gone").await,
        None,
        "delete marker mirrored"
    );
    assert_eq!(
        get(&dest, &versioned_bk, "back").await.as_deref(),
        Some(&b"back v1"[..]),
        "the older version is current again"
    );

    // A second round: only the new changes are applied.
    let run = pipeline.start().await;
    s3.delete(&plain, "obj-1").await;
    s3.put(&plain, "obj-4", b"third 4").await;
    s3.put(&plain, "late", b"late").await;
    pipeline.capture_and_flush(run, &[(&plain, 3)]).await;
    let out = pipeline.zonelog_ok(&["backup", "--once"]);
    assert!(
        out.contains("1 log objects, 3 changes"),
        "only the new log object: {out}"
    );
    assert_eq!(get(&dest, &plain_bk, "obj-1").await, None);
    assert_eq!(
        get(&dest, &plain_bk, "obj-4").await.as_deref(),
        Some(&b"third 4"[..])
    );
    let verify = pipeline.zonelog(&["verify"]);
    assert!(verify.status.success());
    // Nothing new: a run applies nothing.
    let out = pipeline.zonelog_ok(&["backup", "--once"]);
    assert!(out.contains("0 log objects, 0 changes"), "{out}");

    // verify reports a difference and exits 1.
    dest.put(&plain_bk, "stray", b"not at the source").await;
    dest.put(&plain_bk, "obj-4", b"tampered").await;
    let verify = pipeline.zonelog(&["verify", "--bucket", &plain]);
    assert_eq!(verify.status.code(), Some(1));
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains("\"stray\"\tonly at the destination"),
        "{report}"
    );
    assert!(report.contains("\"obj-4\"\tsize differs"), "{report}");

    // A machine that only backs up has no [filter]: verify compares the
    // named bucket whole, and without --bucket says what to do.
    let backup_only = pipeline.dir.path().join("backup-only.toml");
    std::fs::write(
        &backup_only,
        format!(
            "zone = \"bk-zone\"\n[target]\ndirectory = \"{}/logs\"\n{}",
            pipeline.dir.path().display(),
            s3_backup_section(&zone, &state, "")
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(args)
            .arg("-c")
            .arg(&backup_only)
            .env("ZONELOG_LOG", "warn")
            .output()
            .expect("run zonelog")
    };
    let verify = run(&["verify", "--bucket", &plain]);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&verify.stdout), report);
    let verify = run(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(err.contains("no source bucket matches [filter]"), "{err}");
}

/// `zonelog backup --once` with `config`, which must succeed.
fn backup_once(config: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["backup", "--once", "-c"])
        .arg(config)
        .output()
        .expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                if !name.starts_with(".zonelog-backup") {
                    out.push((name, std::fs::read(&path).expect("read")));
                }
            }
        }
    }
    out.sort();
    out
}

fn dir_backup_section(zone: &DevZone, dir: &Path, policy: &str) -> String {
    format!(
        r#"[backup]
policy = "{policy}"
batch = 10
parallelism = 4
[backup.source]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
[backup.destination]
directory = "{dir}"
"#,
        endpoint = zone.endpoint,
        ak = zone.admin_access_key,
        sk = zone.admin_secret_key,
        dir = dir.display(),
    )
}

/// Kill -9 `zonelog backup` at random moments, run it again each time; the
/// destination must end identical to that of one uninterrupted run, and
/// the policies keep what they promise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_killed_at_random_ends_like_an_uninterrupted_run() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkc");
    let dest_root = tempfile::tempdir().expect("temp dir");
    let killed_dir = dest_root.path().join("killed");
    let pipeline = Pipeline::new(
        &zone,
        &[&bucket],
        &dir_backup_section(&zone, &killed_dir, "mirror"),
    );
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    let policy_config =
        |policy: &str| pipeline.policy_config(&killed_dir, dest_root.path(), policy);

    let run = pipeline.start().await;
    s3.create_bucket(&bucket).await;
    let objects: usize = 300;
    for n in 0..objects {
        s3.put(&bucket, &format!("k/{n:04}"), format!("one {n}").as_bytes())
            .await;
    }
    pipeline.capture_and_flush(run, &[(&bucket, objects)]).await;
    // retain and versions see the first puts before the deletes, so they
    // have something to keep.
    for policy in ["retain", "versions"] {
        backup_once(&policy_config(policy));
    }

    let run = pipeline.start().await;
    for n in (0..objects).step_by(3) {
        s3.put(&bucket, &format!("k/{n:04}"), format!("two {n}").as_bytes())
            .await;
    }
    for n in (0..objects).step_by(5) {
        s3.delete(&bucket, &format!("k/{n:04}")).await;
    }
    let changes = objects.div_ceil(3) + objects.div_ceil(5);
    pipeline.capture_and_flush(run, &[(&bucket, changes)]).await;

    let mut rng_state = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["backup", "--once", "-c"])
            .arg(&pipeline.config)
            .env("ZONELOG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start backup");
        tokio::time::sleep(Duration::from_millis(100 + next() % 900)).await;
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        child.wait().expect("reap");
    }
    assert!(
        kills >= 3,
        "the backup was killed while working ({kills} kills)"
    );
    pipeline.zonelog_ok(&["backup", "--once"]);
    let verify = pipeline.zonelog(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The same log objects, applied once without interruption.
    let clean_dir = dest_root.path().join("clean");
    let clean_config = pipeline.dir.path().join("clean.toml");
    let config_text = std::fs::read_to_string(&pipeline.config).unwrap();
    std::fs::write(
        &clean_config,
        config_text.replace(
            &killed_dir.display().to_string(),
            &clean_dir.display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["backup", "--once", "-c"])
        .arg(&clean_config)
        .output()
        .expect("clean backup");
    assert!(out.status.success());
    let killed = tree(&killed_dir);
    assert_eq!(killed.len(), objects - objects.div_ceil(5));
    assert!(
        killed == tree(&clean_dir),
        "killed runs end like a clean run"
    );

    // retain keeps deleted objects. versions keeps a copy per put (of what
    // the unversioned source still had when it ran) and a tombstone per
    // delete; names sort in the order of the changes.
    let deleted = objects.div_ceil(5);
    let overwritten_present = objects.div_ceil(3) - objects.div_ceil(15);
    for (policy, expected) in [
        ("retain", objects),
        ("versions", objects + overwritten_present + deleted),
    ] {
        backup_once(&policy_config(policy));
        let files = tree(&dest_root.path().join(policy));
        assert_eq!(files.len(), expected, "{policy}");
        let body = |name: &str| -> Option<Vec<u8>> {
            files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
        };
        let history = |key: &str| -> Vec<Vec<u8>> {
            files
                .iter()
                .filter(|(name, _)| name.starts_with(&format!("{bucket}/{key}@")))
                .map(|(_, body)| body.clone())
                .collect()
        };
        if policy == "retain" {
            assert_eq!(
                body(&format!("{bucket}/k/0000")),
                Some(b"one 0".to_vec()),
                "kept"
            );
            assert_eq!(body(&format!("{bucket}/k/0003")), Some(b"two 3".to_vec()));
            assert_eq!(body(&format!("{bucket}/k/0001")), Some(b"one 1".to_vec()));
        } else {
            assert_eq!(
                history("k/0003"),
                vec![b"one 3".to_vec(), b"two 3".to_vec()]
            );
            assert_eq!(
                history("k/0000"),
                vec![b"one 0".to_vec(), Vec::new()],
                "a delete is an empty tombstone after the last copy"
            );
            assert_eq!(history("k/0001"), vec![b"one 1".to_vec()]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_name_the_endpoint_that_refused() {
    let Some(zone) = dev_zone() else { return };
    let state = unique_bucket("zlbkw");
    let good = s3_backup_section(&zone, &state, "");
    let pipeline = Pipeline::new(&zone, &["zlbk-none"], &good);
    std::fs::create_dir_all(pipeline.dir.path().join("logs")).unwrap();
    let text = std::fs::read_to_string(&pipeline.config).unwrap();

    let bad_dest = text.replace(
        &format!("secret_key = \"{}\"", zone.user_secret_key),
        "secret_key = \"wrong-secret\"",
    );
    std::fs::write(&pipeline.config, &bad_dest).unwrap();
    let out = pipeline.zonelog(&["backup", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "destination {}",
            zone.endpoint.as_str().trim_end_matches('/')
        )) && err.contains("refused"),
        "names the destination: {err}"
    );

    let bad_source = text.replace(
        &format!(
            "access_key = \"{}\"\nsecret_key = \"{}\"\n[backup.destination]",
            zone.admin_access_key, zone.admin_secret_key
        ),
        &format!(
            "access_key = \"NOSUCHKEY\"\nsecret_key = \"{}\"\n[backup.destination]",
            zone.admin_secret_key
        ),
    );
    assert_ne!(bad_source, text);
    std::fs::write(&pipeline.config, &bad_source).unwrap();
    let out = pipeline.zonelog(&["backup", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("source ") && err.contains("refused"),
        "names the source: {err}"
    );

    let unreachable = text.replace(
        &format!("[backup.destination]\nendpoint = \"{}\"", zone.endpoint),
        "[backup.destination]\nendpoint = \"http://127.0.0.1:9\"",
    );
    assert_ne!(unreachable, text);
    std::fs::write(&pipeline.config, &unreachable).unwrap();
    let out = pipeline.zonelog(&["backup", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("destination http://127.0.0.1:9"),
        "names the destination: {err}"
    );
}

/// Without --once, backup follows: new log objects are applied as they
/// appear, progress goes to the log as plain lines when stderr is not a
/// terminal, and SIGTERM stops it cleanly with the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_mode_applies_new_log_objects_until_sigterm() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkf");
    let dest_root = tempfile::tempdir().expect("temp dir");
    let section = dir_backup_section(&zone, dest_root.path(), "mirror")
        .replace("batch = 10", "batch = 10\npoll_interval = \"300ms\"");
    let pipeline = Pipeline::new(&zone, &[&bucket], &section);
    // This backup reads Parquet log objects in the hive layout (the other
    // tests read JSON Lines in the plain one): the same records, applied
    // the same way.
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    std::fs::write(
        &pipeline.config,
        text.replacen(
            "[collector]\n",
            "[collector]\nformat = \"parquet\"\nlayout = \"hive\"\n",
            1,
        ),
    )
    .expect("config");
    let admin = zone.admin_client();
    let s3 = S3(&admin);

    let run = pipeline.start().await;
    s3.create_bucket(&bucket).await;
    for n in 0..5 {
        s3.put(&bucket, &format!("f/{n}"), b"first").await;
    }
    pipeline.capture_and_flush(run, &[(&bucket, 5)]).await;
    let parquet = std::fs::read_dir(pipeline.dir.path().join("logs/log_zone=bk-zone"))
        .expect("a hive zone folder")
        .flat_map(|date| std::fs::read_dir(date.expect("date").path()).expect("date folder"))
        .flat_map(|hour| std::fs::read_dir(hour.expect("hour").path()).expect("hour folder"))
        .filter(|f| f.as_ref().expect("file").path().extension() == Some("parquet".as_ref()))
        .count();
    assert!(parquet > 0, "no Parquet log object in the hive layout");

    let follower = Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["backup", "-c"])
        .arg(&pipeline.config)
        .env("ZONELOG_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start backup");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "backup never {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let file = |key: &str| std::fs::read(dest_root.path().join(&bucket).join(key)).ok();
    wait_for("copied the first objects", &|| {
        (0..5).all(|n| file(&format!("f/{n}")).is_some())
    });

    let run = pipeline.start().await;
    s3.put(&bucket, "f/1", b"second").await;
    s3.delete(&bucket, "f/2").await;
    s3.put(&bucket, "f/new", b"new").await;
    pipeline.capture_and_flush(run, &[(&bucket, 3)]).await;
    wait_for("applied the second log object", &|| {
        file("f/new").is_some()
            && file("f/2").is_none()
            && file("f/1").as_deref() == Some(b"second")
    });

    Command::new("kill")
        .args(["-TERM", &follower.id().to_string()])
        .status()
        .expect("kill -TERM");
    let out = follower.wait_with_output().expect("reap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("backup: 2 log objects, 8 changes"),
        "{stdout}"
    );
    assert!(
        stderr.contains("log_object="),
        "plain progress lines: {stderr}"
    );
    let verify = pipeline.zonelog(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A bucket removed while zonelog was stopped, then created again under
/// its name: RGW removed the old bucket's index log with it, so the
/// deletes that emptied it have no record; the `bucket_removed` record
/// covers them, and each policy applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_bucket_is_applied_by_policy_and_its_successor_backed_up() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkrm");
    let dest_root = tempfile::tempdir().expect("dest dir");
    let mirror = dest_root.path().join("mirror");
    let pipeline = Pipeline::new(
        &zone,
        &[&bucket],
        &dir_backup_section(&zone, &mirror, "mirror"),
    );
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    let policy_config = |policy: &str| pipeline.policy_config(&mirror, dest_root.path(), policy);
    let policies = ["mirror", "versions", "retain"];

    let run = pipeline.start().await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "x", b"old x").await;
    s3.put(&bucket, "y", b"old y").await;
    pipeline.capture_and_flush(run, &[(&bucket, 2)]).await;
    for policy in policies {
        backup_once(&policy_config(policy));
    }

    // While zonelog is stopped: emptied, removed, created again.
    s3.delete(&bucket, "x").await;
    s3.delete(&bucket, "y").await;
    let url = admin.url(&format!("/{}", encode_path(&bucket)), &[]);
    admin
        .send(Method::DELETE, url, Vec::new(), "delete bucket")
        .await
        .expect("delete bucket");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "z", b"new z").await;
    let run = pipeline.start().await;
    // The removal and put z (the first run's records are flushed).
    pipeline.capture_and_flush(run, &[(&bucket, 2)]).await;
    let logged = pipeline.zonelog_ok(&["logs", "cat"]);
    let ops: Vec<String> = logged
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("log line"))
        .filter(|v| v["bucket"] == bucket.as_str())
        .map(|v| {
            format!(
                "{}:{}",
                v["op"].as_str().unwrap_or(""),
                v["key"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        ops,
        ["put:x", "put:y", "bucket_removed:", "put:z"],
        "Ceph {}: the log between the two buckets",
        zone.release
    );
    for policy in policies {
        backup_once(&policy_config(policy));
    }
    let files = |policy: &str| -> Vec<String> {
        tree(&dest_root.path().join(policy))
            .into_iter()
            .map(|(name, body)| format!("{name}={}", String::from_utf8_lossy(&body)))
            .collect()
    };
    let dest = &bucket;
    assert_eq!(
        files("mirror"),
        [format!("{dest}/z=new z")],
        "mirror: the old bucket's objects went with it"
    );
    let retained = files("retain");
    assert!(
        retained.contains(&format!("{dest}/x=old x"))
            && retained.contains(&format!("{dest}/z=new z")),
        "retain keeps everything: {retained:?}"
    );
    let versions = files("versions");
    assert!(
        versions.iter().any(|f| f.starts_with(&format!("{dest}/@"))),
        "versions: one tombstone for the bucket: {versions:?}"
    );
    assert!(
        versions
            .iter()
            .any(|f| f.starts_with(&format!("{dest}/x@"))),
        "versions: the old objects' history stays: {versions:?}"
    );
    let verify = pipeline.zonelog(&["verify"]);
    assert!(
        verify.status.success(),
        "verify after a removal: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// One line of a log object, as an older zonelog (or anyone with write
/// access to the log target) could have written it.
fn log_line(bucket: &str, key: &str, op: &str, n: u64) -> String {
    let record = serde_json::json!({
        "v": 2,
        "id": format!("{:020}-{n:016x}", 1_796_000_000_000_000_000u64 + n),
        // After the source's objects were written, as a put's time is.
        "time": zonelog::record::format_time(&chrono::Utc::now()),
        "zone": "bk-zone",
        "bucket": bucket,
        "key": key,
        "version_id": null,
        "op": op,
        "source": {"type": "test"},
    });
    format!("{record}\n")
}

/// Bucket names that climb out of a directory destination, in a log the
/// backup reads: nothing outside the backup root is deleted or written,
/// each such record is reported and set aside, and the backup goes on to
/// the records after it, under every policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bucket_names_in_a_log_never_reach_outside_the_backup_root() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkhostile");
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "ok", b"fine").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(&victim).expect("victim dir");
    std::fs::write(victim.join("precious"), b"keep me").expect("victim file");
    let logs = dir.path().join("logs");
    let object =
        logs.join("bk-zone/2026/12/02/00/000000000001_20261202T000000Z_20261202T000100Z.jsonl");
    std::fs::create_dir_all(object.parent().expect("parent")).expect("log dir");
    let hostile = ["v1-x/../../victim", "../victim", "t1/../../victim"];
    // A name RGW allows (relaxed names) that is the backup's own state
    // directory: its removal must not empty the backup's checkpoints.
    let state_dir = ".zonelog-backup";
    let mut lines = String::new();
    let mut n = 0;
    for name in hostile.into_iter().chain([state_dir]) {
        for op in ["delete", "put", "delete_marker"] {
            n += 1;
            lines.push_str(&log_line(name, "precious", op, n));
        }
        n += 1;
        lines.push_str(&log_line(name, "", "bucket_removed", n));
    }
    lines.push_str(&log_line(&bucket, "ok", "put", n + 1));
    std::fs::write(&object, lines).expect("log object");

    for policy in ["mirror", "versions", "retain"] {
        let dest = dir.path().join(format!("backup-{policy}"));
        // Buckets backed up before, whose directories the names climb from.
        for earlier in ["v1-x", "t1"] {
            std::fs::create_dir_all(dest.join(earlier)).expect("earlier bucket");
        }
        let config = dir.path().join(format!("{policy}.toml"));
        std::fs::write(
            &config,
            format!(
                "zone = \"bk-zone\"\n[target]\ndirectory = \"{}\"\n{}",
                logs.display(),
                dir_backup_section(&zone, &dest, policy)
            ),
        )
        .expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["backup", "--once", "-c"])
            .arg(&config)
            .output()
            .expect("backup");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            std::fs::read(victim.join("precious")).ok().as_deref(),
            Some(&b"keep me"[..]),
            "{policy}: the file outside the backup root is untouched: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(&victim).expect("victim").count(),
            1,
            "{policy}: nothing written beside it: {stderr}"
        );
        assert!(out.status.success(), "{policy}: {stderr}");
        // `versions` keeps it as `ok@<record id>`.
        let copies: Vec<Vec<u8>> = std::fs::read_dir(dest.join(&bucket))
            .map(|d| {
                d.map(|e| e.expect("entry").path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("ok"))
                    })
                    .map(|p| std::fs::read(p).expect("copy"))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            copies,
            [b"fine".to_vec()],
            "{policy}: the record after the hostile ones is applied: {stderr}"
        );
        assert!(
            stderr.contains("set aside"),
            "{policy}: hostile records are reported: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("{} set aside", hostile.len() * 4)),
            "{policy}: {stdout}"
        );
        // Nothing but the backup root, the logs, the configs and the victim.
        let mut top: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".toml") && !n.starts_with("backup-"))
            .collect();
        top.sort();
        assert_eq!(top, ["logs", "victim"], "{policy}");
        let again = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["backup", "--once", "-c"])
            .arg(&config)
            .output()
            .expect("backup");
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(
            stdout.contains("0 log objects, 0 changes"),
            "{policy}: the checkpoint survived a bucket named {state_dir}: {stdout}"
        );
    }
}

/// `versions` keeps each put under `KEY@ID`. An unversioned source keeps
/// only the newest content, so a put whose content was overwritten before
/// the backup ran must not get the newer content under its own id: it is
/// skipped (counted), and only the put that wrote the content holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_never_file_newer_content_under_an_older_put() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkver");
    let dest_root = tempfile::tempdir().expect("dest dir");
    let dest = dest_root.path().join("versions");
    let pipeline = Pipeline::new(
        &zone,
        &[&bucket],
        &dir_backup_section(&zone, &dest, "versions"),
    );
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    let run = pipeline.start().await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "doc", b"first").await;
    // A later second, so that the two writes differ in Last-Modified too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s3.put(&bucket, "doc", b"second").await;
    pipeline.capture_and_flush(run, &[(&bucket, 2)]).await;
    let out = pipeline.zonelog_ok(&["backup", "--once"]);
    let copies: Vec<(String, Vec<u8>)> = tree(&dest.join(&bucket));
    let contents: Vec<&[u8]> = copies.iter().map(|(_, c)| c.as_slice()).collect();
    assert_eq!(
        contents,
        [&b"second"[..]],
        "only the put that wrote it holds the newest content: {copies:?}\n{out}"
    );
    assert!(out.contains("1 skipped"), "{out}");
}

/// Keys that are valid at the source but that a destination cannot hold
/// as they are: `KEY@ID` over S3's 1024 bytes (`versions`), a key segment
/// over the file-name limit of a directory, and `a` beside `a/b` in a
/// directory. Each gets its documented outcome — a shortened `versions`
/// name, or the record set aside and reported — and the backup goes on to
/// the records after them instead of stopping on them forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_a_destination_cannot_hold_get_their_documented_outcome() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlbkawk");
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    s3.create_bucket(&bucket).await;
    let long = "L".repeat(1000);
    let long_segment = format!("d/{}/f", "s".repeat(300));
    let keys = [long.as_str(), long_segment.as_str(), "a", "a/b", "ok"];
    for key in keys {
        s3.put(&bucket, key, format!("body of {}", key.len()).as_bytes())
            .await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let object =
        logs.join("bk-zone/2026/12/02/00/000000000001_20261202T000000Z_20261202T000100Z.jsonl");
    std::fs::create_dir_all(object.parent().expect("parent")).expect("log dir");
    let lines: String = keys
        .iter()
        .enumerate()
        .map(|(n, key)| log_line(&bucket, key, "put", n as u64 + 1))
        .collect();
    std::fs::write(&object, &lines).expect("log object");
    let ids: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("line");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    let run = |name: &str, backup_section: String| {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "zone = \"bk-zone\"\n[target]\ndirectory = \"{}\"\n{backup_section}",
                logs.display()
            ),
        )
        .expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["backup", "--once", "-c"])
            .arg(&config)
            .output()
            .expect("backup");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{name}: {stdout}{stderr}");
        (stdout, stderr)
    };

    // S3 destination, `versions`: the long key's copy gets a shortened
    // name that fits, and every copy holds its content.
    let state = unique_bucket("zlbkawkstate");
    let (stdout, _) = run(
        "versions-s3",
        s3_backup_section(&zone, &state, "policy = \"versions\""),
    );
    assert!(stdout.contains("5 copied"), "{stdout}");
    let user = zone.user_client();
    let dest = S3(&user);
    for (key, id) in keys.iter().zip(&ids) {
        let name = zonelog::backup::versioned_key(key, id);
        assert!(name.len() <= 1024, "{} bytes", name.len());
        assert!(name.ends_with(&format!("@{id}")), "{name}");
        let body = get(&dest, &format!("{bucket}-bk"), &name).await;
        assert_eq!(
            body.as_deref(),
            Some(format!("body of {}", key.len()).as_bytes()),
            "{} bytes of key",
            key.len()
        );
    }
    let shortened = zonelog::backup::versioned_key(&long, &ids[0]);
    assert!(shortened.starts_with(&"L".repeat(900)), "{shortened}");

    // Directory destination, `mirror`: the long key, the long segment and
    // `a/b` (whose `a` is a file already) are set aside and reported; `a`
    // and `ok` are backed up; a second run has nothing left to do.
    let dest_dir = dir.path().join("mirror");
    let (stdout, stderr) = run("mirror-dir", dir_backup_section(&zone, &dest_dir, "mirror"));
    assert!(stdout.contains("3 set aside"), "{stdout}{stderr}");
    for key in [long.as_str(), long_segment.as_str(), "a/b"] {
        let short: String = key.chars().take(40).collect();
        assert!(
            stderr.contains("set aside") && stderr.contains(&short),
            "{key:?} is reported: {stderr}"
        );
    }
    let files: Vec<(String, Vec<u8>)> = tree(&dest_dir.join(&bucket));
    assert_eq!(
        files,
        [
            ("a".to_string(), b"body of 1".to_vec()),
            ("ok".to_string(), b"body of 2".to_vec())
        ],
        "{stderr}"
    );
    let (again, _) = run("mirror-dir", dir_backup_section(&zone, &dest_dir, "mirror"));
    assert!(again.contains("0 log objects, 0 changes"), "{again}");
}
