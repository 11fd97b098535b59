//! Tests of the parent module.
use super::*;
use proptest::prelude::*;

/// What RGW 16.2.15 sent to an http push endpoint (dev zone).
const RGW_PUT: &str = r#"{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"2026-11-25T17:02:25.069098Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"zonelog-admin"},"requestParameters":{"sourceIPAddress":""},"responseElements":{"x-amz-request-id":"83f437ee-6a86-4504-b23f-3f7a91f92ffa.4163.16623372461090809451","x-amz-id-2":"1043-default-default"},"s3":{"s3SchemaVersion":"1.0","configurationId":"zonelog","bucket":{"name":"nexp-b1","ownerIdentity":{"principalId":"zonelog-admin"},"arn":"arn:aws:s3:::nexp-b1","id":"83f437ee-6a86-4504-b23f-3f7a91f92ffa.4165.9"},"object":{"key":"a b","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","versionId":"","sequencer":"A114076B14773D04","metadata":[{"key":"x-amz-content-sha256","val":"UNSIGNED-PAYLOAD"}],"tags":[]}},"eventId":"1795626145.071137.5d41402abc4b2a76b9719d911017c592","opaqueData":""}]}"#;

const RGW_DELETE_MARKER: &str = r#"{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"2026-11-25T17:02:43.246941Z","eventName":"ObjectRemoved:DeleteMarkerCreated","s3":{"bucket":{"name":"nexp-b1"},"object":{"key":"v1","size":"5","eTag":"5d41402abc4b2a76b9719d911017c592","versionId":"","sequencer":"B314076B421DB80E"}},"eventId":"1795626163.246947.5d41402abc4b2a76b9719d911017c592","opaqueData":"x"}]}"#;

/// MinIO's webhook format (keys URL-encoded, `s3:` prefix).
const MINIO_PUT: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"images/dir/a b.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2019-05-18T07:34:32.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minio"},"requestParameters":{"accessKey":"minio","region":"","sourceIPAddress":"172.18.0.1"},"responseElements":{"x-amz-request-id":"159FB6B233B08AF0"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"images","ownerIdentity":{"principalId":"minio"},"arn":"arn:aws:s3:::images"},"object":{"key":"dir%2Fa+b.jpg","size":629648,"eTag":"b7ce786cd89b182bfd5ae765557bbc37","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"versionId":"1","sequencer":"15612487A9DF732C"}},"source":{"host":"","port":"","userAgent":""}}]}"#;

/// The AWS documentation's example, a delete of a version.
const AWS_DELETE: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2","eventTime":"1970-01-01T00:00:00.000Z","eventName":"ObjectRemoved:Delete","userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},"s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule","bucket":{"name":"mybucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::mybucket"},"object":{"key":"HappyFace%28copy%29.jpg","versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}}]}"#;

#[test]
fn rgw_put_maps_to_a_put_with_the_raw_key() {
    let parsed = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_eq!(parsed.ignored, 0);
    let n = &parsed.notifications[0];
    let r = &n.record;
    assert_eq!((r.bucket.as_str(), r.key.as_str()), ("nexp-b1", "a b"));
    assert_eq!(r.op, Op::Put);
    assert_eq!(r.version_id, None);
    assert_eq!(r.size, Some(5));
    assert_eq!(r.etag.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
    assert_eq!(
        crate::record::format_time(&r.time),
        "2026-11-25T17:02:25.069098000Z"
    );
    assert_eq!(
        r.source,
        Provenance::Notify {
            event_id: Some("1795626145.071137.5d41402abc4b2a76b9719d911017c592".into()),
            sequencer: Some("A114076B14773D04".into()),
        }
    );
    assert!(n.dedup.is_some());
}

#[test]
fn delete_marker_has_no_size_and_size_may_be_a_string() {
    let parsed = parse(RGW_DELETE_MARKER.as_bytes(), KeyEncoding::Auto).unwrap();
    let r = &parsed.notifications[0].record;
    assert_eq!(r.op, Op::DeleteMarker);
    assert_eq!((r.size, r.etag.as_deref()), (None, None));
    let put = RGW_PUT.replace("\"size\":5", "\"size\":\"5\"");
    let parsed = parse(put.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_eq!(parsed.notifications[0].record.size, Some(5));
}

#[test]
fn minio_and_aws_keys_are_url_decoded() {
    let parsed = parse(MINIO_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
    let r = &parsed.notifications[0].record;
    assert_eq!(
        (r.bucket.as_str(), r.key.as_str()),
        ("images", "dir/a b.jpg")
    );
    assert_eq!(r.version_id.as_deref(), Some("1"));
    let parsed = parse(AWS_DELETE.as_bytes(), KeyEncoding::Auto).unwrap();
    let r = &parsed.notifications[0].record;
    assert_eq!(r.key, "HappyFace(copy).jpg");
    assert_eq!(r.op, Op::Delete);
    assert_eq!(
        r.version_id.as_deref(),
        Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
    );
    // The encoding can be forced either way.
    let parsed = parse(AWS_DELETE.as_bytes(), KeyEncoding::Raw).unwrap();
    assert_eq!(
        parsed.notifications[0].record.key,
        "HappyFace%28copy%29.jpg"
    );
    let parsed = parse(RGW_PUT.as_bytes(), KeyEncoding::Url).unwrap();
    assert_eq!(parsed.notifications[0].record.key, "a b");
}

#[test]
fn event_names_map_to_ops() {
    for (name, op) in [
        ("ObjectCreated:Put", Some(Op::Put)),
        ("s3:ObjectCreated:Post", Some(Op::Put)),
        ("ObjectCreated:Copy", Some(Op::Put)),
        ("ObjectCreated:CompleteMultipartUpload", Some(Op::Put)),
        ("ObjectRemoved:Delete", Some(Op::Delete)),
        (
            "s3:ObjectRemoved:DeleteMarkerCreated",
            Some(Op::DeleteMarker),
        ),
        ("LifecycleExpiration:Delete", Some(Op::Delete)),
        ("ObjectLifecycle:Expiration:Current", Some(Op::Delete)),
        ("ObjectTagging:Put", Some(Op::Metadata)),
        ("s3:ObjectAccessed:Get", None),
        ("ObjectRestore:Post", None),
        ("LifecycleTransition", None),
    ] {
        assert_eq!(op_of(name), op, "{name}");
    }
}

#[test]
fn redeliveries_share_a_dedup_key_and_other_events_do_not() {
    let a = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
    let b = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_eq!(a.notifications[0].dedup, b.notifications[0].dedup);
    let other = RGW_PUT.replace("A114076B14773D04", "A114076B14773D05");
    let c = parse(other.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_ne!(a.notifications[0].dedup, c.notifications[0].dedup);
    let bare = RGW_PUT
        .replace("\"sequencer\":\"A114076B14773D04\",", "")
        .replace(
            "\"eventId\":\"1795626145.071137.5d41402abc4b2a76b9719d911017c592\",",
            "",
        );
    let d = parse(bare.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_eq!(d.notifications[0].dedup, None);
}

#[test]
fn malformed_bodies_name_the_problem() {
    let cases = [
        ("not json", "body"),
        ("{\"Records\": 5}", "Records"),
        ("{}", "no \"Records\""),
        (
            "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\"}]}",
            "Records[0].s3: missing",
        ),
        (
            "{\"Records\":[{\"eventTime\":\"2026-01-01T00:00:00Z\",\"s3\":{}}]}",
            "Records[0].eventName: missing",
        ),
    ];
    for (body, want) in cases {
        let e = parse(body.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert!(e.to_string().contains(want), "{body}: {e}");
    }
    let bad_time = RGW_PUT.replace("2026-11-25T17:02:25.069098Z", "yesterday");
    let e = parse(bad_time.as_bytes(), KeyEncoding::Auto).unwrap_err();
    assert_eq!(e.path, "Records[0].eventTime");
    let bad_size = RGW_PUT.replace("\"size\":5", "\"size\":\"five\"");
    let e = parse(bad_size.as_bytes(), KeyEncoding::Auto).unwrap_err();
    assert!(e.path.starts_with("Records[0].s3.object"), "{e}");
    let bad_key = MINIO_PUT.replace("dir%2Fa+b.jpg", "dir%zz");
    let e = parse(bad_key.as_bytes(), KeyEncoding::Auto).unwrap_err();
    assert_eq!(e.path, "Records[0].s3.object.key");
    let long_key = RGW_PUT.replace(
        "\"key\":\"a b\"",
        &format!("\"key\":\"{}\"", "k".repeat(2000)),
    );
    let e = parse(long_key.as_bytes(), KeyEncoding::Auto).unwrap_err();
    assert!(e.to_string().contains("Records[0]: object key"), "{e}");
    // One bad record fails the whole body.
    let two = format!(
        "{{\"Records\":[{}, {{\"eventName\":\"ObjectCreated:Put\"}}]}}",
        &RGW_PUT[12..RGW_PUT.len() - 2]
    );
    let e = parse(two.as_bytes(), KeyEncoding::Auto).unwrap_err();
    assert_eq!(e.path, "Records[1].s3");
}

#[test]
fn test_events_and_other_kinds_are_ignored() {
    let parsed = parse(
        br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"b"}"#,
        KeyEncoding::Auto,
    )
    .unwrap();
    assert_eq!((parsed.notifications.len(), parsed.ignored), (0, 1));
    let get = MINIO_PUT.replace(
        "\"eventName\":\"s3:ObjectCreated:Put\"",
        "\"eventName\":\"s3:ObjectAccessed:Get\"",
    );
    let parsed = parse(get.as_bytes(), KeyEncoding::Auto).unwrap();
    assert_eq!((parsed.notifications.len(), parsed.ignored), (0, 1));
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("ObjectCreated:Put"),
            Just("s3:ObjectRemoved:DeleteMarkerCreated"),
            Just("2026-11-25T17:02:25.069098Z"),
            Just("%zz+%41"),
            Just("ceph:s3"),
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let names = prop_oneof![
            Just("Records".to_string()),
            Just("eventName".to_string()),
            Just("eventTime".to_string()),
            Just("eventSource".to_string()),
            Just("eventId".to_string()),
            Just("s3".to_string()),
            Just("bucket".to_string()),
            Just("object".to_string()),
            Just("name".to_string()),
            Just("key".to_string()),
            Just("size".to_string()),
            Just("eTag".to_string()),
            Just("versionId".to_string()),
            Just("sequencer".to_string()),
            ".{0,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(names, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No input makes the parser panic: arbitrary bytes, and arbitrary
    /// JSON shaped like (and unlike) an event.
    #[test]
    fn never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body, KeyEncoding::Auto);
    }

    #[test]
    fn never_panics_on_json(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        for encoding in [KeyEncoding::Auto, KeyEncoding::Url, KeyEncoding::Raw] {
            if let Ok(parsed) = parse(&body, encoding) {
                for n in parsed.notifications {
                    prop_assert!(n.record.validate().is_ok());
                }
            }
        }
    }

    #[test]
    fn never_panics_on_event_shaped_json(
        name in ".{0,30}", key in ".{0,40}", time in ".{0,30}", size in ".{0,8}",
    ) {
        let body = serde_json::json!({"Records": [{
            "eventName": name, "eventTime": time, "eventSource": "minio:s3",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size}}
        }]});
        let _ = parse(&serde_json::to_vec(&body).unwrap(), KeyEncoding::Auto);
    }

    #[test]
    fn url_decode_inverts_encoding(key in "\\PC{1,40}") {
        let encoded = crate::capture::rgw::admin::encode_query(&key);
        prop_assert_eq!(url_decode(&encoded), Some(key));
    }
}

/// A detail of an unexpected shape is left out; the change is recorded.
#[test]
fn a_malformed_detail_never_fails_the_body() {
    let hostile = RGW_PUT
        .replace(
            r#""userIdentity":{"principalId":"zonelog-admin"}"#,
            r#""userIdentity":"root""#,
        )
        .replace(r#""tags":[]"#, r#""tags":5"#)
        .replace(
            r#""metadata":[{"key":"x-amz-content-sha256","val":"UNSIGNED-PAYLOAD"}]"#,
            r#""metadata":[{"key":1}]"#,
        )
        .replace(
            r#""responseElements":{"#,
            r#""responseElements":{"x-amz-request-id":["a"],"x":{"#,
        )
        .replace(
            r#""x-amz-id-2":"1043-default-default"}"#,
            r#""x-amz-id-2":"1"}}"#,
        );
    let parsed = parse(hostile.as_bytes(), KeyEncoding::Auto).expect("the change is kept");
    let r = &parsed.notifications[0].record;
    assert_eq!((r.key.as_str(), r.op, r.size), ("a b", Op::Put, Some(5)));
    let d = &r.details;
    assert_eq!(
        (&d.requester, &d.tags, &d.user_metadata),
        (&None, &None, &None)
    );
    assert!(d.sequence.is_some());
}
