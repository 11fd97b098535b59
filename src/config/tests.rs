use super::*;
use crate::index::IndexMode;

const GOOD: &str = r#"
zone = "default"

[sources.rgw]
endpoint = "http://127.0.0.1:47480"
access_key = "AK"
secret_key = "SK"

[filter]
buckets = ["photos"]
bucket_prefixes = ["backup-"]
key_prefixes = { photos = ["2026/"] }

[index]
path = "/tmp/zl"

[target]
directory = "/tmp/zl-logs"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_with_env(text, "test.toml", Vec::new())
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_toml_with_env(text, "test.toml", env)
}

fn error_of(text: &str) -> String {
    load(text)
        .expect_err("config should be refused")
        .to_string()
}

#[test]
fn good_config_loads_with_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.index.shards, 64);
    assert_eq!(c.index.mode, IndexMode::EveryWrite);
    assert_eq!(c.collector.period, Duration::from_secs(60));
    assert_eq!(c.sources.rgw.unwrap().secret_key.expose(), "SK");
}

#[test]
fn the_layout_is_plain_unless_set() {
    assert_eq!(load(GOOD).unwrap().collector.layout, Layout::Plain);
    let hive = GOOD.replace("[index]", "[collector]\nlayout = \"hive\"\n\n[index]");
    assert_eq!(load(&hive).unwrap().collector.layout, Layout::Hive);
    let env = load_env(GOOD, &[("ZONELOG_COLLECTOR__LAYOUT", "hive")]).unwrap();
    assert_eq!(env.collector.layout, Layout::Hive);
    let e = error_of(&GOOD.replace("[index]", "[collector]\nlayout = \"tree\"\n\n[index]"));
    assert!(
        e.starts_with("collector.layout: unknown variant `tree`"),
        "{e}"
    );
}

#[test]
fn unknown_field_is_named() {
    let e = error_of(&GOOD.replace("[index]", "[index]\nshard = 3"));
    assert!(
        e.starts_with("index.shard: unknown field `shard`, expected one of `backend`"),
        "{e}"
    );
}

#[test]
fn wrong_type_is_named() {
    let e = error_of(&GOOD.replace("[index]", "[index]\nshards = \"many\""));
    assert!(e.starts_with("index.shards: invalid type"), "{e}");
}

#[test]
fn invalid_url_is_named() {
    let e = error_of(&GOOD.replace("http://127.0.0.1:47480", "not a url"));
    assert!(e.starts_with("sources.rgw.endpoint: "), "{e}");
    let e = error_of(&GOOD.replace("http://127.0.0.1:47480", "ftp://host/"));
    assert!(e.contains("not an http"), "{e}");
}

#[test]
fn missing_credentials_are_named() {
    let e = error_of(&GOOD.replace("secret_key = \"SK\"", "secret_key = \"\""));
    assert_eq!(
        e,
        "sources.rgw.secret_key: missing credentials: secret_key is not set"
    );
    let e = error_of(&GOOD.replace("secret_key = \"SK\"\n", ""));
    assert!(
        e.starts_with("sources.rgw: missing field `secret_key`"),
        "{e}"
    );
}

#[test]
fn zero_period_is_refused() {
    let e = error_of(&format!("{GOOD}\n[collector]\nperiod = \"0s\"\n"));
    assert_eq!(e, "collector.period: must be greater than 0");
    let e = error_of(&format!("{GOOD}\n[collector]\nperiod = -5\n"));
    assert!(e.starts_with("collector.period: invalid type"), "{e}");
}

#[test]
fn filters_that_never_match_are_refused() {
    let e = error_of(&GOOD.replace("\"backup-\"", "\"Backup-\""));
    assert!(
        e.starts_with("filter.bucket_prefixes[0]: \"Backup-\" can never match"),
        "{e}"
    );
    let e = error_of(&GOOD.replace("photos = [\"2026/\"]", "other = [\"x\"]"));
    assert!(
        e.starts_with("filter.key_prefixes.other: bucket \"other\" is not selected"),
        "{e}"
    );
    let e = error_of(&GOOD.replace("buckets = [\"photos\"]", "buckets = [\"ph\"]"));
    assert!(
        e.starts_with("filter.buckets[0]: \"ph\" must be 3 to 63"),
        "{e}"
    );
    let no_filter = GOOD
        .replace("buckets = [\"photos\"]\n", "")
        .replace("bucket_prefixes = [\"backup-\"]\n", "")
        .replace("key_prefixes = { photos = [\"2026/\"] }\n", "");
    assert!(error_of(&no_filter).starts_with("filter: no buckets"));
}

#[test]
fn target_needs_exactly_one_kind() {
    let e = error_of(&GOOD.replace(
        "directory = \"/tmp/zl-logs\"",
        "bucket = \"logs\"\ndirectory = \"/x\"",
    ));
    assert!(e.starts_with("target: set either"), "{e}");
    let e = error_of(&GOOD.replace("directory = \"/tmp/zl-logs\"", "bucket = \"logs\""));
    assert_eq!(e, "target.endpoint: is required for an S3 target");
}

#[test]
fn part_size_must_fit_s3() {
    let e = error_of(&format!("{GOOD}\n[collector]\npart_size = \"1 MiB\"\n"));
    assert!(e.starts_with("collector.part_size: "), "{e}");
}

#[test]
fn syntax_error_names_the_file() {
    let e = error_of("zone = ");
    assert!(e.starts_with("test.toml: not valid TOML"), "{e}");
}

#[test]
fn env_overrides_values_with_types() {
    let c = load_env(
        GOOD,
        &[
            ("ZONELOG_INDEX__SHARDS", "16"),
            ("ZONELOG_INDEX__MODE", "latest"),
            ("ZONELOG_SOURCES__RGW__SECRET_KEY", "12345"),
            ("ZONELOG_COLLECTOR__PERIOD", "10s"),
            (
                "ZONELOG_DEV_RGW_ENDPOINT",
                "ignored: belongs to the dev zone script",
            ),
        ],
    )
    .unwrap();
    assert_eq!(c.index.shards, 16);
    assert_eq!(c.index.mode, IndexMode::Latest);
    assert_eq!(c.sources.rgw.unwrap().secret_key.expose(), "12345");
    assert_eq!(c.collector.period, Duration::from_secs(10));
}

#[test]
fn bad_env_override_names_the_variable() {
    let e = load_env(GOOD, &[("ZONELOG_INDEX__SHARDS", "lots")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("environment variable ZONELOG_INDEX__SHARDS: index.shards: invalid type"),
        "{e}"
    );
    let e = load_env(GOOD, &[("ZONELOG_INDX__SHARDS", "3")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("environment variable ZONELOG_INDX__SHARDS: indx: unknown field `indx`"),
        "{e}"
    );
}

#[test]
fn secrets_are_redacted() {
    let c = load(GOOD).unwrap();
    let shown = c.to_redacted_toml();
    assert!(!shown.contains("\"SK\""), "{shown}");
    assert!(shown.contains("<redacted>"));
    assert!(!format!("{c:?}").contains("\"SK\""));
}

const BACKUP_ONLY: &str = r#"
zone = "default"

[target]
directory = "/tmp/zl-logs"

[backup]
policy = "retain"

[backup.source]
endpoint = "http://127.0.0.1:47480"
access_key = "AK"
secret_key = "SK"

[backup.destination]
endpoint = "http://127.0.0.1:47481"
access_key = "AK2"
secret_key = "SK2"
bucket_template = "{bucket}-bk"
buckets = { photos = "photos-archive" }
state_bucket = "zl-state"
"#;

#[test]
fn backup_only_config_needs_no_source_or_filter() {
    let c = load(BACKUP_ONLY).unwrap();
    let b = c.backup.unwrap();
    assert_eq!(b.policy, DeletePolicy::Retain);
    assert_eq!(b.parallelism, 8);
    assert_eq!(b.batch, 1000);
    assert_eq!(b.destination.bucket_for("photos"), "photos-archive");
    assert_eq!(b.destination.bucket_for("docs"), "docs-bk");
}

#[test]
fn backup_mistakes_are_named() {
    let cases = [
        (
            BACKUP_ONLY.replace("[target]\ndirectory = \"/tmp/zl-logs\"\n", ""),
            "target: [backup] reads the log objects from [target]",
        ),
        (
            BACKUP_ONLY.replace("policy = \"retain\"", "policy = \"keep\""),
            "backup.policy: unknown variant `keep`",
        ),
        (
            BACKUP_ONLY.replace("policy = \"retain\"", "parallelism = 0"),
            "backup.parallelism: 0 is outside 1..=256",
        ),
        (
            BACKUP_ONLY.replace("state_bucket = \"zl-state\"\n", ""),
            "backup.destination.state_bucket: is required for an S3 destination",
        ),
        (
            BACKUP_ONLY.replace("state_bucket", "directory = \"/srv/bk\"\nstate_bucket"),
            "backup.destination: set either `endpoint`",
        ),
        (
            BACKUP_ONLY
                .replace("\"{bucket}-bk\"", "\"one\"")
                .replace("buckets = { photos = \"photos-archive\" }\n", ""),
            "backup.destination.bucket_template: \"one\" does not contain {bucket}",
        ),
        (
            BACKUP_ONLY.replace("photos-archive", "Bad_Bucket"),
            "backup.destination.buckets.photos: \"Bad_Bucket\"",
        ),
        (
            BACKUP_ONLY
                .replace("part_size", "x")
                .replace("policy = \"retain\"", "part_size = \"1MiB\""),
            "backup.part_size: 1.0 MiB is outside",
        ),
        (
            BACKUP_ONLY.replace("secret_key = \"SK2\"\n", ""),
            "backup.destination",
        ),
        (
            BACKUP_ONLY.replace("policy = \"retain\"", "multipart_threshold = \"8MiB\""),
            "backup.multipart_threshold: 8.0 MiB is smaller than part_size 16.0 MiB",
        ),
    ];
    for (text, expected) in cases {
        let e = error_of(&text);
        assert!(e.starts_with(expected), "expected {expected:?}, got {e:?}");
    }
}

#[test]
fn backup_section_does_not_excuse_an_empty_filter_for_capture() {
    let text = format!(
        "{}\n[sources.rgw]\nendpoint = \"http://127.0.0.1:47480\"\naccess_key = \"AK\"\nsecret_key = \"SK\"\n",
        BACKUP_ONLY
    );
    assert!(error_of(&text).starts_with("filter: no buckets"));
}

#[test]
fn notify_source_options_are_checked() {
    let notify = |extra: &str| {
        format!(
            "zone = \"z\"\n[sources.notify]\nlisten = \"127.0.0.1:9480\"\ntoken = \"t\"\n{extra}\n\
             [filter]\nbuckets = [\"photos\"]\n"
        )
    };
    let c = load(&notify("")).unwrap();
    let n = c.sources.notify.unwrap();
    assert_eq!(n.key_encoding, KeyEncoding::Auto);
    assert_eq!((n.dedup_events, n.topic.as_str()), (262_144, "zonelog"));
    assert!(n.push_endpoint.is_none() && n.rgw.is_none());
    assert_eq!(n.body_timeout, Duration::from_secs(30));
    let e = error_of(&notify("dedup_events = 10"));
    assert!(e.contains("sources.notify.dedup_events"), "{e}");
    let e = error_of(&notify("body_timeout = \"0s\""));
    assert!(e.contains("sources.notify.body_timeout"), "{e}");
    let c = load(&notify("body_timeout = \"5s\"")).unwrap();
    assert_eq!(
        c.sources.notify.unwrap().body_timeout,
        Duration::from_secs(5)
    );
    let e = error_of(&notify(
        "push_endpoint = \"http://u:p@10.0.0.1:9480/v1/events\"",
    ));
    assert!(
        e.contains("sources.notify.push_endpoint") && e.contains("user:password"),
        "{e}"
    );
    let e = error_of(&notify("topic = \"a b\""));
    assert!(e.contains("sources.notify.topic"), "{e}");
    let e = error_of(&notify("key_encoding = \"base64\""));
    assert!(e.contains("key_encoding"), "{e}");
    let e = error_of(&notify(
        "[sources.notify.rgw]\nendpoint = \"http://rgw\"\naccess_key = \"a\"\nsecret_key = \"\"",
    ));
    assert!(e.contains("sources.notify.rgw.secret_key"), "{e}");
    let e = error_of(
        "zone = \"z\"\n[sources.notify]\nlisten = \"127.0.0.1:9480\"\ntoken = \"\"\n[filter]\nbuckets = [\"photos\"]\n",
    );
    assert!(e.contains("sources.notify.token"), "{e}");
    let c = load_env(
        &notify(""),
        &[
            ("ZONELOG_SOURCES__NOTIFY__TOKEN", "from-env"),
            ("ZONELOG_SOURCES__NOTIFY__KEY_ENCODING", "raw"),
        ],
    )
    .unwrap();
    let n = c.sources.notify.as_ref().unwrap();
    assert_eq!(n.token.expose(), "from-env");
    assert_eq!(n.key_encoding, KeyEncoding::Raw);
    assert!(!c.to_redacted_toml().contains("from-env"));
}

#[test]
fn rados_index_config_loads_and_is_checked() {
    for example in [
        "examples/rados/instance-a.toml",
        "examples/rados/instance-b.toml",
    ] {
        let text = std::fs::read_to_string(example).expect("example exists");
        let c = load(&text).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(c.index.backend, IndexBackend::Rados);
        let rados = c.index.rados.expect("[index.rados]");
        assert_eq!(
            (rados.pool.as_str(), rados.user.as_str()),
            ("zonelog-test", "admin")
        );
        assert_eq!(rados.op_timeout, Duration::from_secs(30));
    }
    let with = |rados: &str| {
        GOOD.replace(
            "[index]\npath = \"/tmp/zl\"",
            &format!("[index]\nbackend = \"rados\"\n{rados}"),
        )
    };
    let e = error_of(&with(""));
    assert!(e.contains("index.rados"), "{e}");
    let e = error_of(&with("[index.rados]\npool = \"p\"\nuser = \"client.x\"\n"));
    assert!(e.contains("index.rados.user"), "{e}");
    let e = error_of(&with("[index.rados]\npool = \"p\"\nop_timeout = \"0s\"\n"));
    assert!(e.contains("index.rados.op_timeout"), "{e}");
    let c = load_env(
        &with("[index.rados]\npool = \"p\"\n"),
        &[("ZONELOG_INDEX__RADOS__NAMESPACE", "ns1")],
    )
    .unwrap();
    assert_eq!(c.index.rados.expect("rados").namespace, "ns1");
}

#[test]
fn push_capture_works_with_the_rados_index() {
    let text = GOOD.replace(
        "[index]\npath = \"/tmp/zl\"",
        "[index]\nbackend = \"rados\"\n[index.rados]\npool = \"p\"\n\
         [sources.notify]\nlisten = \"127.0.0.1:9480\"\ntoken = \"t\"",
    );
    let c = load(&text).unwrap();
    assert!(c.sources.notify.is_some());
    assert_eq!(c.index.backend, IndexBackend::Rados);
}

#[test]
fn an_http_listener_beyond_loopback_needs_a_token() {
    let open = format!("{GOOD}\n[http]\nlisten = \"0.0.0.0:9464\"\n");
    let e = error_of(&open);
    assert!(e.contains("http.token") && e.contains("loopback"), "{e}");
    let empty = format!("{GOOD}\n[http]\nlisten = \"0.0.0.0:9464\"\ntoken = \"\"\n");
    assert!(error_of(&empty).contains("http.token"));
    let guarded = format!("{GOOD}\n[http]\nlisten = \"0.0.0.0:9464\"\ntoken = \"t0k\"\n");
    let c = load(&guarded).unwrap();
    assert!(c.http.token.is_some_and(|t| t.matches(b"t0k")));
    let local = format!("{GOOD}\n[http]\nlisten = \"[::1]:9464\"\n");
    assert!(load(&local).is_ok());
}

#[test]
fn a_log_filter_that_does_not_parse_is_named() {
    for good in ["info", "warn,zonelog=debug", "zonelog::capture=trace"] {
        let c = load(&format!("{GOOD}\n[log]\nlevel = \"{good}\"\n")).unwrap();
        assert!(c.log.filter().is_ok(), "{good}");
    }
    let err = error_of(&format!("{GOOD}\n[log]\nlevel = \"zonelog=loud\"\n"));
    assert!(
        err.contains("log.level") && err.contains("zonelog=loud"),
        "{err}"
    );
}

/// The Debian package's /etc/zonelog/zonelog.toml checks as shipped, and
/// the secrets go in through the environment (/etc/zonelog/env).
#[test]
fn the_packaged_config_loads_and_takes_secrets_from_the_environment() {
    let path = "packaging/deb/zonelog.toml";
    let text = std::fs::read_to_string(path).expect("packaged config exists");
    let c = load(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(c.index.backend, IndexBackend::Embedded);
    assert_eq!(c.index.path, Path::new("/var/lib/zonelog/index"));
    assert!(c.http.listen.ip().is_loopback());
    let c = load_env(
        &text,
        &[
            ("ZONELOG_SOURCES__RGW__SECRET_KEY", "rgw-secret"),
            ("ZONELOG_TARGET__SECRET_KEY", "target-secret"),
        ],
    )
    .unwrap_or_else(|e| panic!("{path} with secrets from the environment: {e}"));
    let rgw = c.sources.rgw.as_ref().expect("[sources.rgw]");
    assert_eq!(rgw.secret_key.expose(), "rgw-secret");
    let target = c.target.as_ref().expect("[target]");
    assert_eq!(
        target.secret_key.as_ref().map(Secret::expose),
        Some("target-secret")
    );
}

/// `ZONELOG_LOG` (the one-run filter) and `ZONELOG_CONFIG` (the file's
/// path) are not configuration, but `ZONELOG_LOG__FORMAT` and
/// `ZONELOG_LOG__LEVEL` are, as documented.
#[test]
fn log_section_variables_apply_and_zonelog_log_does_not() {
    let cfg = load_env(
        GOOD,
        &[
            ("ZONELOG_LOG__FORMAT", "json"),
            ("ZONELOG_LOG__LEVEL", "debug"),
            ("ZONELOG_LOG", "trace"),
            // How `-c` can be given (clap reads it); not a config field.
            ("ZONELOG_CONFIG", "/etc/zonelog/zonelog.toml"),
        ],
    )
    .expect("loads");
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "debug");
    let refused = load_env(GOOD, &[("ZONELOG_LOG__LEVEL", "bogus=loud")])
        .expect_err("a bad filter from the environment is refused")
        .to_string();
    assert!(
        refused.contains("ZONELOG_LOG__LEVEL") || refused.contains("log.level"),
        "{refused}"
    );
}
