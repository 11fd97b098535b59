//! Log objects that analytics tools query in place (docs/format.md,
//! "Querying the logs in place"): the collector writes a known set of
//! changes to a directory target and to an RGW target, in the plain and
//! the hive layout; DuckDB (the `duckdb` package from PyPI, in the venv
//! `scripts/py-env` makes) reads each copy as written, counts records per
//! op and per bucket, and runs the documented queries, which must give
//! what the index held. Also: a target whose zone holds both layouts (the
//! option switched) is read in window order, each object once.
//!
//! The Python environment comes from `ZONELOG_DEV_PYTHON` (a python with `duckdb`
//! and `pyarrow`) or else `scripts/py-env`. When neither gives one the
//! tests fail; outside CI, `ZONELOG_SKIP_PY_TESTS=1` skips them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use common::dev_zone;
use zonelog::collector::Collector;
use zonelog::config::{CollectorConfig, Compression, Format, Layout, TargetConfig};
use zonelog::index::conformance::{read_all, record};
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode, WriteBatch};
use zonelog::lease::LeaseStore;
use zonelog::logs::{LogObject, LogReader};
use zonelog::record::{ChangeRecord, Op};
use zonelog::target::Target;

const ZONE: &str = "dev-zone";
/// 2026-12-01T23:00:00Z: the changes span two hours either side of a
/// midnight, so "per day" has two days.
const BASE_NS: u64 = 1_796_166_000_000_000_000;
const CHANGES: u64 = 2_000;
/// The key the documented "one key over time" query asks for.
const TOM: (&str, &str) = ("photos", "cats/tom.jpg");
const BUCKETS: [&str; 3] = ["photos", "backups", "acme/reports"];
/// Every layout in every format.
const COPIES: [(Layout, Format); 4] = [
    (Layout::Plain, Format::Jsonl),
    (Layout::Hive, Format::Jsonl),
    (Layout::Plain, Format::Parquet),
    (Layout::Hive, Format::Parquet),
];

/// A python with `duckdb` and `pyarrow`, or `None` when the developer
/// asked to skip.
fn python() -> Option<PathBuf> {
    if let Ok(python) = std::env::var("ZONELOG_DEV_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !ci && std::env::var("ZONELOG_SKIP_PY_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("ZONELOG_SKIP_PY_TESTS=1: skipping a test that needs DuckDB");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/py-env");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/py-env could not make the Python environment with duckdb and pyarrow:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).expect("a path");
    Some(PathBuf::from(python.trim()))
}

/// The changes: puts (with a size), deletes, delete markers and metadata
/// changes over three buckets, and a few changes of one key.
fn changes() -> Vec<ChangeRecord> {
    (0..CHANGES)
        .map(|i| {
            let time = BASE_NS + i * 3_600_000_000; // every 3.6 s: 2 hours
            let bucket = BUCKETS[(i % 3) as usize];
            let (bucket, key) = if i % 250 == 7 {
                (TOM.0, TOM.1.to_string())
            } else {
                (bucket, format!("dir/{i:05}"))
            };
            let op = match i % 10 {
                0..=5 => Op::Put,
                6 | 7 => Op::Delete,
                8 => Op::DeleteMarker,
                _ => Op::Metadata,
            };
            let version = (op == Op::DeleteMarker || i % 4 == 0).then(|| format!("v{i}"));
            let mut r = ChangeRecord {
                size: (op == Op::Put).then_some(i * 1_000 + 1),
                etag: (op == Op::Put).then(|| format!("{i:032x}")),
                ..record(bucket, &key, version.as_deref(), op, time)
            };
            // Record v3 details on the puts: a storage class, and tags on
            // some, which the queries read as JSON.
            if op == Op::Put {
                let class = if i % 3 == 0 { "COLD" } else { "STANDARD" };
                r.details.storage_class = Some(class.into());
                let team = if i % 5 == 0 { "blue" } else { "red" };
                r.details.tags = Some([("team".to_string(), team.to_string())].into());
            }
            r
        })
        .collect()
}

fn config(layout: Layout, format: Format) -> CollectorConfig {
    CollectorConfig {
        period: Duration::from_secs(1),
        cutoff_margin: Duration::from_secs(1),
        lease_duration: Duration::from_secs(10),
        multipart_threshold: ByteSize::mib(8),
        part_size: ByteSize::mib(5),
        compression: Compression::Zstd,
        // Several objects per copy.
        max_entries_per_object: 700,
        write_empty_windows: false,
        layout,
        format,
    }
}

fn open_index(dir: &Path) -> Arc<EmbeddedIndex> {
    let layout = IndexLayout {
        shards: 8,
        mode: IndexMode::EveryWrite,
    };
    Arc::new(EmbeddedIndex::open(dir, layout).expect("open index"))
}

/// Runs a collector round of a fresh index holding `records` into
/// `target`, which writes them all; returns how many objects it wrote.
async fn collect(target: &Target, cfg: CollectorConfig, records: &[ChangeRecord]) -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open_index(dir.path());
    for chunk in records.chunks(1000) {
        let mut batch = WriteBatch::new();
        for r in chunk {
            batch = batch.record(r.clone());
        }
        index.write(batch).await.expect("write");
    }
    let collector = Collector::new(
        index.clone() as Arc<dyn ChangeIndex>,
        index.clone() as Arc<dyn LeaseStore>,
        target.clone(),
        ZONE,
        cfg,
        "holder".into(),
    );
    let report = collector.round().await.expect("round");
    assert!(
        read_all(&(index as Arc<dyn ChangeIndex>)).await.is_empty(),
        "all written and trimmed"
    );
    report.windows.len()
}

fn directory_target(dir: &Path) -> Target {
    Target::from_config(&TargetConfig {
        endpoint: None,
        region: "us-east-1".into(),
        access_key: None,
        secret_key: None,
        bucket: None,
        prefix: "logs".into(),
        directory: Some(dir.to_path_buf()),
    })
    .expect("directory target")
}

/// Copies every object of `target` into `dir`, its key as the path (what
/// `aws s3 sync` makes of the bucket).
async fn download(target: &Target, dir: &Path) {
    for object in target.list(target.prefix(), None).await.expect("list") {
        let bytes = target
            .read_key(&object.key)
            .await
            .expect("get")
            .expect("listed object is there");
        let path = dir.join(&object.key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folders");
        std::fs::write(path, bytes).expect("write copy");
    }
}

/// What the Python side found (tests/py/query.py).
fn query(python: &Path, dir: &Path, format: Format) -> serde_json::Value {
    let format = match format {
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(python)
        .arg(root.join("tests/py/query.py"))
        .arg(dir)
        .arg(format)
        .arg(root.join("docs/format.md"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "tests/py/query.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("query.py prints JSON")
}

fn counts<'a>(items: impl Iterator<Item = &'a str>) -> serde_json::Value {
    let mut counts = BTreeMap::<&str, u64>::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    serde_json::to_value(counts).expect("JSON")
}

/// The documented queries' answers, computed from the records.
fn check_documented_queries(found: &serde_json::Value, records: &[ChangeRecord], what: &str) {
    let docs = &found["docs"];
    let text = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, Into::into);
    let size = |r: &ChangeRecord| text(&r.size.map(|s| s.to_string()));
    // Records are in id order already (their times grow).
    let tom: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = records
        .iter()
        .filter(|r| (r.bucket.as_str(), r.key.as_str()) == TOM)
        .map(|r| (r.op.as_str().into(), text(&r.version_id), size(r)))
        .collect();
    let got: Vec<_> = docs["the changes of one key over time"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row[1].clone(), row[2].clone(), row[3].clone()))
        .collect();
    assert!(tom.len() >= 8, "the key has changes");
    assert_eq!(got, tom, "{what}: one key over time");

    let mut deletes = BTreeMap::<(String, String), u64>::new();
    for r in records {
        if matches!(r.op, Op::Delete | Op::DeleteMarker) {
            let day = r.time.format("%Y-%m-%d").to_string();
            *deletes.entry((day, r.bucket.clone())).or_default() += 1;
        }
    }
    let want: Vec<serde_json::Value> = deletes
        .into_iter()
        .map(|((day, bucket), n)| serde_json::json!([bucket, day, n.to_string()]))
        .collect();
    assert_eq!(want.len(), 6, "three buckets, two days");
    assert_eq!(
        docs["deletes per bucket per day"],
        serde_json::Value::Array(want),
        "{what}: deletes per bucket per day"
    );

    let (from, to) = (BASE_NS + 3_600_000_000_000, BASE_NS + 7_200_000_000_000);
    let mut largest: Vec<&ChangeRecord> = records
        .iter()
        .filter(|r| {
            let ns = r.time.timestamp_nanos_opt().expect("in range") as u64;
            r.op == Op::Put && (from..to).contains(&ns)
        })
        .collect();
    largest.sort_by_key(|r| std::cmp::Reverse(r.size));
    let want: Vec<serde_json::Value> = largest[..10]
        .iter()
        .map(|r| serde_json::json!([r.bucket, r.key, text(&r.version_id), size(r)]))
        .collect();
    let got: Vec<serde_json::Value> = docs["the largest objects written in a window of time"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| serde_json::json!([row[0], row[1], row[2], row[3]]))
        .collect();
    assert_eq!(got, want, "{what}: the largest objects");
}

/// Checks what DuckDB read from one copy against the records.
fn check_copy(found: &serde_json::Value, records: &[ChangeRecord], layout: Layout, what: &str) {
    assert_eq!(found["total"], records.len() as u64, "{what}: {found}");
    assert_eq!(
        found["per_op"],
        counts(records.iter().map(|r| r.op.as_str())),
        "{what}"
    );
    assert_eq!(
        found["per_bucket"],
        counts(records.iter().map(|r| r.bucket.as_str())),
        "{what}"
    );
    let columns = found["columns"].as_array().expect("columns");
    let hive = columns.iter().any(|c| c == "log_zone");
    assert_eq!(hive, layout == Layout::Hive, "{what}: {columns:?}");
    assert_eq!(
        columns.iter().filter(|c| *c == "zone").count(),
        1,
        "{what}: the records' zone stays one column"
    );
    if hive {
        assert_eq!(found["other_zone"], 0, "{what}");
        for files in found["other_zone_files"].as_array().expect("plan") {
            assert_eq!(
                files[0], "0",
                "{what}: the other zone's filter reads no file"
            );
        }
        let per_hour = found["per_log_hour"].as_object().expect("hours");
        let sum: u64 = per_hour.values().filter_map(|n| n.as_u64()).sum();
        assert_eq!(sum, records.len() as u64, "{what}: {per_hour:?}");
    }
    assert_eq!(
        found["per_storage_class"],
        counts(
            records
                .iter()
                .filter_map(|r| r.details.storage_class.as_deref())
        ),
        "{what}"
    );
    let blue = records
        .iter()
        .filter(|r| {
            r.details
                .tags
                .as_ref()
                .and_then(|t| t.get("team"))
                .is_some_and(|t| t == "blue")
        })
        .count();
    assert_eq!(found["tagged_blue"], blue as u64, "{what}");
    if let Some(total) = found.get("pyarrow_total") {
        assert_eq!(total, records.len() as u64, "{what}: pyarrow");
        assert_eq!(found["pyarrow_per_op"], found["per_op"], "{what}: pyarrow");
        let schema = &found["pyarrow_schema"];
        assert_eq!(schema["time"], "timestamp[ns, tz=UTC]", "{what}: {schema}");
        assert_eq!(schema["size"], "uint64", "{what}: {schema}");
        assert_eq!(schema["zone"], "string", "{what}: {schema}");
        assert_eq!(schema["is_multipart"], "bool", "{what}: {schema}");
    }
    check_documented_queries(found, records, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_a_directory_target_in_both_layouts_and_formats() {
    let Some(python) = python() else { return };
    let records = changes();
    for (layout, format) in COPIES {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(layout, format);
        let objects = collect(&directory_target(dir.path()), cfg, &records).await;
        assert_eq!(objects, 3, "700 + 700 + 600");
        let found = query(&python, dir.path(), format);
        check_copy(
            &found,
            &records,
            layout,
            &format!("directory, {layout:?}, {format:?}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_objects_of_an_rgw_target_in_both_layouts_and_formats() {
    let Some(zone) = dev_zone() else { return };
    let Some(python) = python() else { return };
    let records = changes();
    for (layout, format) in COPIES {
        let (_, target) = common::target::fresh(&zone, "logs").await;
        assert_eq!(collect(&target, config(layout, format), &records).await, 3);
        let copy = tempfile::tempdir().expect("temp dir");
        download(&target, copy.path()).await;
        let found = query(&python, copy.path(), format);
        check_copy(
            &found,
            &records,
            layout,
            &format!("RGW, {layout:?}, {format:?}"),
        );
    }
}

/// The zone's objects as the one reader lists them: (layout, number).
async fn listed(reader: &LogReader, after: Option<&str>) -> Vec<(Layout, u64)> {
    let objects: Vec<LogObject> = reader.list(Some(ZONE), after).await.expect("list");
    objects
        .into_iter()
        .map(|o| (o.name.layout, o.name.number))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_layout_and_format_continues_the_numbering_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = directory_target(dir.path());
    let records = changes();
    let index_dir = tempfile::tempdir().expect("temp dir");
    let index = open_index(index_dir.path());
    let round = |layout: Layout, format: Format, part: std::ops::Range<usize>| {
        let index = index.clone();
        let target = target.clone();
        let records = records[part].to_vec();
        async move {
            let mut batch = WriteBatch::new();
            for r in records {
                batch = batch.record(r);
            }
            index.write(batch).await.expect("write");
            let collector = Collector::new(
                index.clone() as Arc<dyn ChangeIndex>,
                index.clone() as Arc<dyn LeaseStore>,
                target,
                ZONE,
                config(layout, format),
                "holder".into(),
            );
            collector.round().await.expect("round").windows.len() as u64
        }
    };
    // Formats switch too: each object is read as its name says.
    let mut written = round(Layout::Plain, Format::Jsonl, 0..800).await;
    written += round(Layout::Hive, Format::Parquet, 800..1200).await;
    written += round(Layout::Plain, Format::Parquet, 1200..1300).await;
    // A new index (a lost disk) after a switch to hive continues after the
    // newest object of either layout.
    collect(
        &target,
        config(Layout::Hive, Format::Jsonl),
        &records[1300..],
    )
    .await;
    let reader = LogReader::new(target.clone());
    let all = listed(&reader, None).await;
    let numbers: Vec<u64> = all.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert!(numbers.len() as u64 > written, "the new index wrote too");
    let layouts: Vec<Layout> = all.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        layouts,
        [
            vec![Layout::Plain; 2],
            vec![Layout::Hive; 1],
            vec![Layout::Plain; 1],
            vec![Layout::Hive; numbers.len() - 4],
        ]
        .concat(),
        "{all:?}"
    );
    // Every change once, in order, read through the one reader.
    let mut ids = Vec::new();
    for object in reader.list(Some(ZONE), None).await.expect("list") {
        use futures::StreamExt as _;
        let records = reader.records(&object).await.expect("open");
        let mut records = std::pin::pin!(records);
        while let Some(r) = records.next().await {
            ids.push(r.expect("record").id);
        }
    }
    assert_eq!(ids.len(), records.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    // A checkpoint in either layout resumes after its window.
    let objects = reader.list(Some(ZONE), None).await.expect("list");
    for (at, object) in objects.iter().enumerate() {
        let rest = listed(&reader, Some(&object.key)).await;
        assert_eq!(rest, all[at + 1..], "after {}", object.key);
    }
    // The old index, behind the new one, refuses to write on.
    index
        .write(WriteBatch::new().record(records[0].clone()))
        .await
        .expect("write");
    let old = Collector::new(
        index.clone() as Arc<dyn ChangeIndex>,
        index.clone() as Arc<dyn LeaseStore>,
        target.clone(),
        ZONE,
        config(Layout::Plain, Format::Jsonl),
        "holder".into(),
    );
    let error = old.round().await.expect_err("another index wrote after it");
    assert!(
        error.to_string().contains("another zonelog index"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_parquet_window_goes_up_in_parts_of_about_one_row_group_each() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let Some(zone) = dev_zone() else { return };
    let (_, target) = common::target::fresh(&zone, "logs").await;
    // Distinct keys, etags and markers: about 20 bytes a row compressed,
    // so a few parts of 5 MiB.
    let n = 900_000u64;
    let records: Vec<ChangeRecord> = (0..n)
        .map(|i| ChangeRecord {
            size: Some(i * 7_919 % 5_000_000),
            etag: Some(format!(
                "{:032x}",
                u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )),
            ..record(
                BUCKETS[(i % 3) as usize],
                &format!("cam-{:03}/IMG_{i:08}.jpg", i % 977),
                None,
                Op::Put,
                BASE_NS + i * 1_000,
            )
        })
        .collect();
    let cfg = CollectorConfig {
        multipart_threshold: ByteSize::mib(5),
        part_size: ByteSize::mib(5),
        max_entries_per_object: n,
        ..config(Layout::Hive, Format::Parquet)
    };
    assert_eq!(collect(&target, cfg, &records).await, 1);
    let objects = LogReader::new(target.clone())
        .list(Some(ZONE), None)
        .await
        .expect("list");
    let [object] = &objects[..] else {
        panic!("one object: {objects:?}")
    };
    let head = target
        .store()
        .head(&object.key)
        .await
        .expect("head")
        .expect("there");
    let parts: usize = head
        .etag
        .as_deref()
        .and_then(|e| e.split_once('-'))
        .and_then(|(_, n)| n.parse().ok())
        .expect("a multipart ETag");
    let bytes = target
        .read_key(&object.key)
        .await
        .expect("get")
        .expect("there");
    let reader = SerializedFileReader::new(bytes).expect("a Parquet file");
    let metadata = reader.metadata();
    let rows: i64 = metadata.row_groups().iter().map(|g| g.num_rows()).sum();
    assert_eq!(rows, n as i64);
    let groups = metadata.num_row_groups();
    let sizes: Vec<i64> = metadata
        .row_groups()
        .iter()
        .map(|g| g.compressed_size())
        .collect();
    eprintln!("{parts} parts of 5 MiB, row groups of {sizes:?} bytes");
    assert!(parts >= 3, "{parts} parts");
    // A row group closes once its pages reach a part: all but the last
    // are a part or a little more, so each part holds one row group's
    // start at most.
    assert!(
        groups <= parts && groups + 1 >= parts,
        "{groups} row groups for {parts} parts: {sizes:?}"
    );
    for size in &sizes[..groups - 1] {
        assert!((5 << 20..(5 << 20) + (2 << 20)).contains(size), "{sizes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zonelog_logs_prints_every_format_and_layout_as_the_same_lines() {
    // One directory per copy; `zonelog logs cat` over each prints the
    // JSON lines, the same whatever the format and layout.
    let records = changes();
    let mut printed = Vec::new();
    for (layout, format) in COPIES {
        let dir = tempfile::tempdir().expect("temp dir");
        collect(
            &directory_target(dir.path()),
            config(layout, format),
            &records,
        )
        .await;
        let config = dir.path().join("zonelog.toml");
        std::fs::write(
            &config,
            format!(
                "zone = \"{ZONE}\"\n[sources.rgw]\nendpoint = \"http://127.0.0.1:9\"\n\
                 access_key = \"a\"\nsecret_key = \"s\"\n[filter]\nbucket_prefixes = [\"\"]\n\
                 [index]\npath = \"{}\"\n\
                 [target]\ndirectory = \"{}\"\nprefix = \"logs\"\n",
                dir.path().join("index").display(),
                dir.path().display()
            ),
        )
        .expect("config");
        let ls = common::zonelog_ok(&config, &["logs", "ls"]);
        let listed = String::from_utf8(ls.stdout).expect("UTF-8");
        assert_eq!(listed.lines().count(), 3, "{listed}");
        let cat = common::zonelog_ok(&config, &["logs", "cat"]);
        let lines = String::from_utf8(cat.stdout).expect("UTF-8");
        assert_eq!(
            lines.lines().count(),
            records.len(),
            "{layout:?} {format:?}"
        );
        printed.push(lines);
    }
    // The ids differ between copies (each index numbers its own entries);
    // all else is the same.
    let without_ids = |text: &String| -> Vec<serde_json::Value> {
        text.lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON");
                value["id"] = serde_json::Value::Null;
                value
            })
            .collect()
    };
    for other in &printed[1..] {
        assert_eq!(without_ids(other), without_ids(&printed[0]));
    }
}
