//! The notify receiver in process, without a sender: what it refuses
//! (no token, wrong token, malformed JSON or records, too large, a body
//! that does not arrive in time) stores nothing; what it accepts is durable when it answers; duplicates —
//! repeated, concurrent, or after a restart — are stored once.

use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use tokio::sync::watch;
use zonelog::capture::notify;
use zonelog::config::{FilterConfig, KeyEncoding, NotifySourceConfig, Secret};
use zonelog::filter::Filter;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, EntryId, IndexLayout, IndexMode, MergedReader};
use zonelog::record::{ChangeRecord, Op};

const TOKEN: &str = "test-token-3f9a";

fn config() -> NotifySourceConfig {
    NotifySourceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Secret::new(TOKEN),
        max_body: ByteSize::kib(64),
        body_timeout: Duration::from_secs(30),
        key_encoding: KeyEncoding::Auto,
        dedup_events: 16_384,
        push_endpoint: None,
        topic: "zonelog".into(),
        rgw: None,
    }
}

fn filter() -> Filter {
    Filter::new(&FilterConfig {
        buckets: vec![],
        bucket_prefixes: vec!["photos".into()],
        key_prefixes: Default::default(),
    })
}

/// An event as RGW 16 sends it.
fn rgw_event(bucket: &str, key: &str, name: &str, sequencer: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
        "eventTime": "2026-11-25T17:02:25.069098Z", "eventName": name,
        "userIdentity": {"principalId": "u"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "zonelog",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592",
                          "versionId": "", "sequencer": sequencer, "metadata": [], "tags": []}},
        "eventId": format!("1795626145.071137.{sequencer}"), "opaqueData": ""
    })
}

fn body(events: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "Records": events })).unwrap()
}

fn open_index(dir: &tempfile::TempDir) -> Arc<EmbeddedIndex> {
    Arc::new(
        EmbeddedIndex::open(
            &dir.path().join("index"),
            IndexLayout {
                shards: 4,
                mode: IndexMode::EveryWrite,
            },
        )
        .unwrap(),
    )
}

async fn all_records(index: &Arc<EmbeddedIndex>) -> Vec<ChangeRecord> {
    let mut reader = MergedReader::new(
        index.clone() as Arc<dyn ChangeIndex>,
        EntryId::MIN,
        EntryId::MAX,
        1000,
    );
    let mut out = Vec::new();
    while let Some(e) = reader.next().await.unwrap() {
        out.push(e.record);
    }
    out
}

struct Running {
    url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    counters: Arc<notify::NotifyCounters>,
}

async fn start(index: &Arc<EmbeddedIndex>) -> Running {
    start_with(index, config()).await
}

async fn start_with(index: &Arc<EmbeddedIndex>, config: NotifySourceConfig) -> Running {
    let (stop, shutdown) = watch::channel(false);
    let server = notify::start(
        &config,
        index.clone() as Arc<dyn ChangeIndex>,
        filter(),
        shutdown,
    )
    .await
    .expect("start receiver");
    let url = format!("http://{}/v1/events", server.local_addr);
    let counters = server.counters.clone();
    let task = tokio::spawn(server.run());
    Running {
        url,
        stop,
        task,
        counters,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = client.post(url).body(body);
    if let Some(token) = auth {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A POST with `Transfer-Encoding: chunked`; returns the status code.
async fn chunked_post(url: &str, payload: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        url.path()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in payload.chunks(1000) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat();
        // The server may answer and close before the whole body is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_stores_nothing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let index = open_index(&dir);
    let running = start_with(
        &index,
        NotifySourceConfig {
            body_timeout: Duration::from_millis(500),
            ..config()
        },
    )
    .await;
    let payload = body(&[rgw_event("photos", "slow", "ObjectCreated:Put", "S1")]);
    let url = url::Url::parse(&running.url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path(),
        payload.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the body, then nothing: the sender stalls.
    stream
        .write_all(&payload[..payload.len() / 2])
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the receiver answers a stalled body instead of waiting for it")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sources.notify.body_timeout"), "{answer}");
    assert!(all_records(&index).await.is_empty(), "nothing stored");

    // A sender that delivers its body in time is served as usual.
    let client = reqwest::Client::new();
    let (status, text) = post(&client, &running.url, Some(TOKEN), payload).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(all_records(&index).await.len(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_without_token_or_with_bad_bodies_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = open_index(&dir);
    let running = start(&index).await;
    let client = reqwest::Client::new();
    let good = body(&[rgw_event("photos", "a", "ObjectCreated:Put", "A1")]);

    let (status, text) = post(&client, &running.url, None, good.clone()).await;
    assert_eq!(status, 401, "{text}");
    let (status, _) = post(&client, &running.url, Some("wrong"), good.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &client,
        &format!("{}?token=wrong", running.url),
        None,
        good.clone(),
    )
    .await;
    assert_eq!(status, 401);

    let (status, text) = post(&client, &running.url, Some(TOKEN), b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(text.contains("body"), "{text}");
    let (status, text) = post(&client, &running.url, Some(TOKEN), b"{}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(text.contains("Records"), "{text}");
    // One bad record among good ones: the whole request is refused.
    let mut bad = rgw_event("photos", "b", "ObjectCreated:Put", "A2");
    bad["s3"]["object"].as_object_mut().unwrap().remove("key");
    let mixed = body(&[rgw_event("photos", "c", "ObjectCreated:Put", "A3"), bad]);
    let (status, text) = post(&client, &running.url, Some(TOKEN), mixed).await;
    assert_eq!(status, 400);
    assert!(text.contains("Records[1].s3.object.key"), "{text}");
    let mut bad_time = rgw_event("photos", "d", "ObjectCreated:Put", "A4");
    bad_time["eventTime"] = "soon".into();
    let (status, text) = post(&client, &running.url, Some(TOKEN), body(&[bad_time])).await;
    assert_eq!(status, 400);
    assert!(text.contains("Records[0].eventTime"), "{text}");

    let huge: Vec<serde_json::Value> = (0..400)
        .map(|n| {
            rgw_event(
                "photos",
                &format!("k{n:04}"),
                "ObjectCreated:Put",
                &format!("H{n}"),
            )
        })
        .collect();
    let (status, text) = post(&client, &running.url, Some(TOKEN), body(&huge)).await;
    assert_eq!(status, 413, "{text}");
    // Without a Content-Length (chunked) the limit holds too.
    assert_eq!(chunked_post(&running.url, &body(&huge)).await, 413);

    assert!(all_records(&index).await.is_empty(), "nothing stored");
    let c = &running.counters;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(c.unauthorized.load(Relaxed), 3);
    assert_eq!(c.malformed.load(Relaxed), 4);
    assert_eq!(c.too_large.load(Relaxed), 2);
    assert_eq!(c.accepted.load(Relaxed), 0);
    running.stop().await;
}

/// Bucket names S3 and RGW never give a bucket (a path that climbs, a
/// tenant that is not one, control characters) get a 400 naming the
/// field, and nothing is stored, even among good records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_names_no_bucket_can_have_get_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let index = open_index(&dir);
    let running = start(&index).await;
    let client = reqwest::Client::new();
    for name in [
        "photos-x/../../../../../var/victim",
        "photos/..",
        "photos/x/y",
        "photos\\..\\x",
        "photos\nx",
        "photos x",
        "photos%2F..",
        "t-1/photos",
    ] {
        let events = body(&[
            rgw_event("photos", "good", "ObjectCreated:Put", "G1"),
            rgw_event(name, "k", "ObjectCreated:Put", "G2"),
        ]);
        let (status, text) = post(&client, &running.url, Some(TOKEN), events).await;
        assert_eq!(status, 400, "{name:?}: {text}");
        assert!(
            text.contains("Records[1].s3.bucket.name"),
            "{name:?}: {text}"
        );
    }
    // Tenant buckets, as RGW names them, are fine.
    let (status, text) = post(
        &client,
        &running.url,
        Some(TOKEN),
        body(&[rgw_event("t1/photos", "k", "ObjectCreated:Put", "T1")]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let stored: Vec<String> = all_records(&index)
        .await
        .into_iter()
        .map(|r| r.bucket)
        .collect();
    assert!(stored.iter().all(|b| b == "t1/photos"), "{stored:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_durably_and_stores_each_notification_once() {
    let dir = tempfile::tempdir().unwrap();
    let layout = IndexLayout {
        shards: 4,
        mode: IndexMode::EveryWrite,
    };
    let path = dir.path().join("index");
    let index = Arc::new(EmbeddedIndex::open(&path, layout).unwrap());
    let running = start(&index).await;
    let client = reqwest::Client::new();

    let first = body(&[
        rgw_event("photos", "dir/a b.jpg", "ObjectCreated:Put", "S1"),
        rgw_event("photos", "dir/a b.jpg", "ObjectRemoved:Delete", "S2"),
        rgw_event("other", "x", "ObjectCreated:Put", "S3"),
    ]);
    let (status, text) = post(&client, &running.url, Some(TOKEN), first.clone()).await;
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["stored"], 2);
    assert_eq!(answer["filtered"], 1);
    // Durable when answered: visible at once.
    let records = all_records(&index).await;
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].key.as_str(), records[0].op),
        ("dir/a b.jpg", Op::Put)
    );

    // The same body again, authenticated the way RGW does it (?token=),
    // and with basic auth: nothing new.
    let (status, text) = post(
        &client,
        &format!("{}?token={TOKEN}", running.url),
        None,
        first.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (answer["stored"].clone(), answer["duplicates"].clone()),
        (0.into(), 2.into())
    );
    let response = client
        .post(&running.url)
        .basic_auth("rgw", Some(TOKEN))
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // Many concurrent requests, each event sent twice at the same time:
    // one commit may carry both copies, still one record each.
    let mut tasks = Vec::new();
    for n in 0..40 {
        for _ in 0..2 {
            let client = client.clone();
            let url = running.url.clone();
            let b = body(&[rgw_event(
                "photos",
                &format!("c/{n:03}"),
                "ObjectCreated:Put",
                &format!("C{n}"),
            )]);
            tasks.push(tokio::spawn(async move {
                post(&client, &url, Some(TOKEN), b).await
            }));
        }
    }
    for t in tasks {
        let (status, text) = t.await.unwrap();
        assert_eq!(status, 200, "{text}");
    }
    let records = all_records(&index).await;
    assert_eq!(records.len(), 42);
    let mut keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 41, "c/000..c/039 once each, plus dir/a b.jpg");

    // After a restart the seen-set is read back from the index.
    running.stop().await;
    drop(index);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let index = Arc::new(EmbeddedIndex::open(&path, layout).unwrap());
    let running = start(&index).await;
    let (status, text) = post(&client, &running.url, Some(TOKEN), first).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["duplicates"], 2, "{text}");
    let again = body(&[rgw_event("photos", "c/007", "ObjectCreated:Put", "C7")]);
    let (_, text) = post(&client, &running.url, Some(TOKEN), again).await;
    assert!(text.contains("\"duplicates\":1"), "{text}");
    assert_eq!(all_records(&index).await.len(), 42);
    running.stop().await;
}

/// An index whose writes can be made to fail, to see what a failed commit
/// leaves behind.
struct Flaky {
    inner: Arc<EmbeddedIndex>,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ChangeIndex for Flaky {
    fn layout(&self) -> IndexLayout {
        self.inner.layout()
    }
    async fn write(
        &self,
        batch: zonelog::index::WriteBatch,
    ) -> Result<Vec<zonelog::index::Written>, zonelog::index::IndexError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(zonelog::index::IndexError::Backend("disk full".into()));
        }
        self.inner.write(batch).await
    }
    async fn read_shard_encoded(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<zonelog::index::EncodedEntries, zonelog::index::IndexError> {
        self.inner.read_shard_encoded(shard, from, to, limit).await
    }
    async fn trim(
        &self,
        entries: &[zonelog::index::EntryRef],
    ) -> Result<u64, zonelog::index::IndexError> {
        self.inner.trim(entries).await
    }
    async fn marker(&self, name: &str) -> Result<Option<Vec<u8>>, zonelog::index::IndexError> {
        self.inner.marker(name).await
    }
    async fn markers(
        &self,
        prefix: &str,
    ) -> Result<Vec<zonelog::index::SourceMarker>, zonelog::index::IndexError> {
        self.inner.markers(prefix).await
    }
    async fn stats(&self) -> Result<zonelog::index::IndexStats, zonelog::index::IndexError> {
        self.inner.stats().await
    }
    async fn watermark(&self) -> Result<zonelog::index::Watermark, zonelog::index::IndexError> {
        self.inner.watermark().await
    }
    async fn freeze(
        &self,
        window: Option<zonelog::index::FrozenWindow>,
        fence: Option<&zonelog::index::Fence>,
    ) -> Result<(), zonelog::index::IndexError> {
        self.inner.freeze(window, fence).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_503_and_the_retry_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let inner = open_index(&dir);
    let flaky = Arc::new(Flaky {
        inner: inner.clone(),
        fail: std::sync::atomic::AtomicBool::new(true),
    });
    let (stop, shutdown) = watch::channel(false);
    let server = notify::start(&config(), flaky.clone(), filter(), shutdown)
        .await
        .unwrap();
    let url = format!("http://{}/v1/events", server.local_addr);
    let task = tokio::spawn(server.run());
    let client = reqwest::Client::new();
    let event = body(&[rgw_event("photos", "k", "ObjectCreated:Put", "F1")]);

    let (status, text) = post(&client, &url, Some(TOKEN), event.clone()).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("disk full"), "{text}");
    assert!(all_records(&inner).await.is_empty());

    // The sender retries once the index works again: stored, not taken
    // for a duplicate of the failed attempt.
    flaky.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, text) = post(&client, &url, Some(TOKEN), event).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"stored\":1"), "{text}");
    assert_eq!(all_records(&inner).await.len(), 1);
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_lease_term_ends_gets_503_and_is_not_stored() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use zonelog::capture::leased::Capture as _;
    use zonelog::capture::notify::server::{bind, LeasedReceiver};
    let dir = tempfile::tempdir().unwrap();
    let index = open_index(&dir);
    let config = config();
    let listener = Arc::new(bind(&config).unwrap());
    let addr = listener.local_addr().unwrap();
    let receiver = LeasedReceiver {
        listener,
        config,
        index: index.clone() as Arc<dyn ChangeIndex>,
        filter: filter(),
        counters: Arc::new(notify::NotifyCounters::default()),
    };
    let (end_term, term) = watch::channel(false);
    let serving = tokio::spawn(async move { receiver.run(term).await });
    let url = format!("http://{addr}/v1/events");
    let client = reqwest::Client::new();
    let first = body(&[rgw_event("photos", "a", "ObjectCreated:Put", "L1")]);
    let (status, text) = post(&client, &url, Some(TOKEN), first).await;
    assert_eq!(status, 200, "{text}");

    // A request whose body is still arriving when the term ends.
    let late = body(&[rgw_event("photos", "late", "ObjectCreated:Put", "L2")]);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        late.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let half = late.len() / 2;
    stream.write_all(&late[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    end_term.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&late[half..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("notify lease"), "{answer}");
    tokio::time::timeout(Duration::from_secs(20), serving)
        .await
        .expect("the term's receiver stops")
        .unwrap();
    let keys: Vec<String> = all_records(&index)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, ["a"], "nothing is stored after the term ended");
}
