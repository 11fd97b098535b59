//! Durable queue-workload benchmark: fjall 3.x vs redb 4.x. See RESULTS.md.
//! Usage: kvcompare fjall|redb

use redb::ReadableDatabase as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SHARDS: u64 = 64;
const T0: u64 = 1_750_000_000_000_000_000;
const CACHE: usize = 64 << 20;
const MARKER: &[u8] = b"rgw-datalog-shard-marker-1_750000000.01";

type Key = [u8; 18];

trait Store: Sync {
    /// Atomically and durably write `entries` plus the `m:rgw` marker.
    fn write(&self, entries: &[(Key, Vec<u8>)], marker: &[u8]);
    /// Read up to `limit` entries of `shard` from its head, in key order; push their keys.
    fn scan(&self, shard: u16, limit: usize, keys: &mut Vec<Key>) -> usize;
    /// Atomically and durably delete `keys`.
    fn delete(&self, keys: &[Key]);
}

fn shard_range(shard: u16) -> ([u8; 2], [u8; 2]) {
    (shard.to_be_bytes(), (shard + 1).to_be_bytes())
}

// ---------------------------------------------------------------- fjall
struct Fjall {
    db: fjall::Database,
    entries: fjall::Keyspace,
    markers: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE as u64)
            .open()
            .unwrap();
        let opts = fjall::KeyspaceCreateOptions::default;
        let entries = db.keyspace("entries", opts).unwrap();
        let markers = db.keyspace("markers", opts).unwrap();
        Fjall {
            db,
            entries,
            markers,
        }
    }
}

impl Store for Fjall {
    fn write(&self, entries: &[(Key, Vec<u8>)], marker: &[u8]) {
        let mut b = self.db.batch();
        for (k, v) in entries {
            b.insert(&self.entries, *k, v.as_slice());
        }
        b.insert(&self.markers, "m:rgw", marker);
        b.commit().unwrap(); // journal write (atomic batch), flushed to the OS
        self.db.persist(fjall::PersistMode::SyncAll).unwrap(); // fsync journal
    }

    fn scan(&self, shard: u16, limit: usize, keys: &mut Vec<Key>) -> usize {
        let (from, to) = shard_range(shard);
        let mut bytes = 0;
        for kv in self.entries.range(from..to).take(limit) {
            let (k, v) = kv.into_inner().unwrap();
            bytes += v.len();
            keys.push(k.as_ref().try_into().unwrap());
        }
        bytes
    }

    fn delete(&self, keys: &[Key]) {
        let mut b = self.db.batch();
        for k in keys {
            b.remove(&self.entries, *k);
        }
        b.commit().unwrap();
        self.db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
}

// ---------------------------------------------------------------- redb
const ENTRIES: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("entries");
const MARKERS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("markers");

struct Redb(redb::Database);

impl Redb {
    fn open(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let db = redb::Database::builder()
            .set_cache_size(CACHE)
            .create(dir.join("db.redb"))
            .unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(ENTRIES).unwrap();
        tx.open_table(MARKERS).unwrap();
        tx.commit().unwrap();
        Redb(db)
    }

    fn txn(&self, f: impl FnOnce(&redb::WriteTransaction)) {
        let mut tx = self.0.begin_write().unwrap(); // blocks while another writer is active
        tx.set_durability(redb::Durability::Immediate).unwrap(); // the default; explicit
        f(&tx);
        tx.commit().unwrap(); // write pages + header, fdatasync
    }
}

impl Store for Redb {
    fn write(&self, entries: &[(Key, Vec<u8>)], marker: &[u8]) {
        self.txn(|tx| {
            let mut t = tx.open_table(ENTRIES).unwrap();
            for (k, v) in entries {
                t.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            tx.open_table(MARKERS)
                .unwrap()
                .insert("m:rgw", marker)
                .unwrap();
        })
    }

    fn scan(&self, shard: u16, limit: usize, keys: &mut Vec<Key>) -> usize {
        let (from, to) = shard_range(shard);
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(ENTRIES).unwrap();
        let mut bytes = 0;
        for kv in t.range(from.as_slice()..to.as_slice()).unwrap().take(limit) {
            let (k, v) = kv.unwrap();
            bytes += v.value().len();
            keys.push(k.value().try_into().unwrap());
        }
        bytes
    }

    fn delete(&self, keys: &[Key]) {
        self.txn(|tx| {
            let mut t = tx.open_table(ENTRIES).unwrap();
            for k in keys {
                t.remove(k.as_slice()).unwrap();
            }
        })
    }
}

// ---------------------------------------------------------------- workload
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Entry number `i`: shard by hash, time increasing with `i`, ~180-byte JSON-ish value.
fn entry(i: u64) -> (Key, Vec<u8>) {
    let h = mix(i);
    let t = T0 + i * 1000;
    let mut k = [0u8; 18];
    k[..2].copy_from_slice(&((h % SHARDS) as u16).to_be_bytes());
    k[2..10].copy_from_slice(&t.to_be_bytes());
    k[10..].copy_from_slice(&i.to_be_bytes());
    let mut v = Vec::with_capacity(192);
    write!(
        v,
        r#"{{"bucket":"bucket-{:02}","key":"data/{:04x}/obj-{}.bin","op":"put","size":{},"etag":"{:016x}{:016x}","mtime":{},"ver":"{:08x}","owner":"tenant-{:04}"}}"#,
        h % 50, h >> 52, i, h % 100_000_000, mix(h), mix(h ^ 1), t, h as u32, h % 9973
    )
    .unwrap();
    (k, v)
}

struct Ingest {
    entries: u64,
    commits: u64,
    secs: f64,
    mean_commit_us: f64,
}

/// Append entries `next..end` (shared counter) in `batch`-sized durable commits from `threads` writers.
fn ingest(s: &impl Store, next: &AtomicU64, end: u64, batch: u64, threads: usize) -> Ingest {
    let start = next.load(Relaxed);
    let (commits, busy) = (AtomicU64::new(0), AtomicU64::new(0));
    let t = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i0 = next.fetch_add(batch, Relaxed);
                if i0 >= end {
                    break;
                }
                let b: Vec<_> = (i0..(i0 + batch).min(end)).map(entry).collect();
                let c = Instant::now();
                s.write(&b, MARKER);
                busy.fetch_add(c.elapsed().as_nanos() as u64, Relaxed);
                commits.fetch_add(1, Relaxed);
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    next.store(end, Relaxed);
    let commits = commits.into_inner();
    Ingest {
        entries: end - start,
        commits,
        secs,
        mean_commit_us: busy.into_inner() as f64 / 1e3 / commits as f64,
    }
}

/// Read every shard from its head to its end; return the keys read (in order).
fn read_all(s: &impl Store) -> (Vec<Key>, f64) {
    let mut keys = Vec::new();
    let t = Instant::now();
    for shard in 0..SHARDS as u16 {
        s.scan(shard, usize::MAX, &mut keys);
    }
    (keys, t.elapsed().as_secs_f64())
}

fn trim(s: &impl Store, keys: &[Key]) -> f64 {
    let t = Instant::now();
    keys.chunks(10_000).for_each(|c| s.delete(c));
    t.elapsed().as_secs_f64()
}

fn head_us(s: &impl Store, shard: u16, n: usize) -> (f64, usize) {
    let mut keys = Vec::with_capacity(n);
    let t = Instant::now();
    s.scan(shard, n, &mut keys);
    (t.elapsed().as_secs_f64() * 1e6, keys.len())
}

/// Allocated bytes (like `du`) under `dir`.
fn disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    disk(&e.path())
                } else {
                    m.blocks() * 512
                }
            })
            .sum()
    })
}

fn proc_status(field: &str) -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with(field)).unwrap();
    l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
}

/// Bytes this process caused to be written to storage (/proc/self/io write_bytes).
fn written() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    let l = s.lines().find(|l| l.starts_with("write_bytes")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn run<S: Store>(name: &str, open: impl Fn(&Path) -> S) {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/data")
        .join(name);
    let _ = std::fs::remove_dir_all(&base);
    let avg = (0..1000).map(|i| entry(i).1.len()).sum::<usize>() / 1000;
    println!(
        "## {name}\n\nkey 18 B, value avg {avg} B, 64 shards, cache {}\n",
        mib(CACHE as u64)
    );
    let next = AtomicU64::new(0);

    // 1 + 2: durable ingest matrix, each on a fresh store (t=1 b=1000 is the main store below).
    println!("| writers | batch | entries | commits | secs | entries/s | µs/commit (wall) | mean commit latency µs |");
    println!("|---|---|---|---|---|---|---|---|");
    let print = |threads, batch, r: &Ingest| {
        println!(
            "| {threads} | {batch} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} |",
            r.entries,
            r.commits,
            r.secs,
            r.entries as f64 / r.secs,
            r.secs * 1e6 / r.commits as f64,
            r.mean_commit_us
        )
    };
    for threads in [1, 4, 16] {
        for (batch, total) in [(1, 2000), (100, 1_000_000), (1000, 1_000_000)] {
            if (threads, batch) == (1, 1000) {
                continue;
            }
            let dir = base.join(format!("ingest-t{threads}-b{batch}"));
            let s = open(&dir);
            let r = ingest(&s, &next, next.load(Relaxed) + total, batch, threads);
            print(threads, batch, &r);
            drop(s);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    let hwm = proc_status("VmHWM");
    // 3 - 6 on the main store: 1M ingest, full read, trim, queue cycles.
    let dir = base.join("main");
    let s = open(&dir);
    let w0 = written();
    let r = ingest(&s, &next, next.load(Relaxed) + 1_000_000, 1000, 1);
    let w_ingest = written() - w0;
    print(1, 1000, &r);
    let d = disk(&dir);
    let mut notes = vec![
        format!("VmHWM after the ingest matrix: {hwm}"),
        format!(
            "disk after 1M ingest: {} = {:.0} B/entry",
            mib(d),
            d as f64 / 1e6
        ),
    ];
    notes.push(format!(
        "written to storage during 1M ingest: {} = {:.1}x the raw key+value bytes",
        mib(w_ingest),
        w_ingest as f64 / (1e6 * (18 + avg) as f64)
    ));
    let (keys, rsecs) = read_all(&s);
    let tsecs = trim(&s, &keys);
    println!("\n| step | entries | secs | entries/s |\n|---|---|---|---|");
    let n = keys.len();
    println!(
        "| full range read, 64 shards | {n} | {rsecs:.2} | {:.0} |",
        n as f64 / rsecs
    );
    println!(
        "| trim read keys, 10k/commit | {n} | {tsecs:.2} | {:.0} |",
        n as f64 / tsecs
    );
    notes.push(format!(
        "disk after trimming all 1M: {}; head probe of emptied shard 0: {:.0} µs",
        mib(disk(&dir)),
        head_us(&s, 0, 1000).0
    ));

    println!("\n| cycle | append/s | read/s | trim/s | cycle entries/s | head 1000 of shard 0 after append µs | probe of emptied shard 0 after trim µs | disk |");
    println!("|---|---|---|---|---|---|---|---|");
    let w0 = written();
    for cycle in 1..=10 {
        let t = Instant::now();
        let r = ingest(&s, &next, next.load(Relaxed) + 200_000, 1000, 1);
        let (h, hn) = head_us(&s, 0, 1000);
        assert_eq!(hn, 1000);
        let (keys, rsecs) = read_all(&s);
        let dsecs = trim(&s, &keys);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(keys.len() as u64, r.entries);
        let n = keys.len() as f64;
        println!(
            "| {cycle} | {:.0} | {:.0} | {:.0} | {:.0} | {h:.0} | {:.0} | {} |",
            n / r.secs,
            n / rsecs,
            n / dsecs,
            n / secs,
            head_us(&s, 0, 1000).0,
            mib(disk(&dir))
        );
    }
    let w = written() - w0;
    notes.push(format!(
        "written to storage during the 10 queue cycles (2M appended + 2M deleted): {} = {:.1}x raw",
        mib(w),
        w as f64 / (2e6 * (18 + avg) as f64)
    ));
    std::thread::sleep(Duration::from_secs(5));
    notes.push(format!("disk after cycles + 5 s idle: {}", mib(disk(&dir))));
    notes.push(format!(
        "VmRSS with main store open: {}",
        proc_status("VmRSS")
    ));
    drop(s);
    notes.push(format!(
        "peak RSS (VmHWM) of the process: {}",
        proc_status("VmHWM")
    ));
    println!();
    notes.iter().for_each(|n| println!("- {n}"));
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("fjall") => run("fjall", Fjall::open),
        Some("redb") => run("redb", Redb::open),
        _ => eprintln!("usage: kvcompare fjall|redb"),
    }
}
