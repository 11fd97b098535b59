//! Tests of the parent module.
use super::*;
use proptest::prelude::*;

#[test]
fn names_sort_chronologically() {
    assert_eq!(
        compact_time(1_764_067_474_123_456_789),
        "20251125T104434.123456789Z"
    );
    let name: LogObjectName =
        "z/2026/11/25/10/000000000042_20261125T100000Z_20261125T103000Z.jsonl.zst"
            .parse()
            .unwrap();
    assert_eq!(
        name.manifest_name(),
        "z/2026/11/25/10/000000000042_20261125T100000.000000000Z_20261125T103000.000000000Z.manifest.json"
    );
    let key = format!(
        "p/z/2025/11/25/10/000000000042_{}_{}.jsonl.zst",
        compact_time(1_764_067_474_123_456_789),
        compact_time(1_764_067_534_000_000_000)
    );
    let name = LogObjectName::from_key(&key, "p").unwrap();
    assert_eq!(
        name.start().timestamp_nanos_opt(),
        Some(1_764_067_474_123_456_789)
    );
    assert_eq!(
        name.cutoff().timestamp_nanos_opt(),
        Some(1_764_067_534_000_000_000)
    );
    assert_eq!(name.to_string(), key["p/".len()..]);
    assert!("x/manifest.json".parse::<LogObjectName>().is_err());
}

#[test]
fn a_log_object_name_gives_its_number_and_cutoff() {
    let name: LogObjectName = "z/2026/12/02/07/000000000002_20251124T155950.000000200Z_20261202T070841.366187854Z.jsonl.zst"
        .parse()
        .expect("parsed");
    assert_eq!(name.number, 2);
    assert_eq!(name.cutoff_ns % 1_000_000_000, 366_187_854);
    assert_eq!(name.format, LogFormat::Jsonl(Compression::Zstd));
    assert!("z/2026/notes.txt".parse::<LogObjectName>().is_err());
}

#[test]
fn the_extension_names_the_format_and_compression() {
    let stem = "z/2026/12/02/00/000000000001_20261202T000000Z_20261202T000100Z";
    for (ext, format) in [
        ("jsonl", LogFormat::Jsonl(Compression::None)),
        ("jsonl.gz", LogFormat::Jsonl(Compression::Gzip)),
        ("jsonl.zst", LogFormat::Jsonl(Compression::Zstd)),
        ("parquet", LogFormat::Parquet),
    ] {
        let name: LogObjectName = format!("{stem}.{ext}").parse().unwrap();
        assert_eq!(name.format, format);
        assert!(name.to_string().ends_with(&format!(".{ext}")));
    }
}

#[test]
fn malformed_names_say_why() {
    let problem = |name: &str| name.parse::<LogObjectName>().unwrap_err().problem;
    let ok = "z/2026/12/02/00/000000000001_20261202T000000Z_20261202T000100Z.jsonl";
    assert!(ok.parse::<LogObjectName>().is_ok());
    for (name, want) in [
        (
            "z/2026/12/02/00/1_20261202T000000Z_20261202T000100Z.json",
            NameProblem::Extension,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_20261202T000100Z.manifest.json",
            NameProblem::Extension,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_20261202T000100Zjsonl",
            NameProblem::Extension,
        ),
        (
            "2026/12/02/00/1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Layout,
        ),
        (
            "p/z/2026/12/02/00/1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Layout,
        ),
        (
            "/2026/12/02/00/1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Layout,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z.jsonl",
            NameProblem::Layout,
        ),
        ("z/2026/12/02/00/1_2_3_4.jsonl", NameProblem::Layout),
        (
            "z/2026/12/02/00/+1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Number,
        ),
        (
            "z/2026/12/02/00/_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Number,
        ),
        (
            "z/2026/12/02/00/99999999999999999999_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::Number,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000_20261202T000100Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_20261202T000100.Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_20261202T000100.1234567890Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/2026/12/02/00/1_20261302T000000Z_20261202T000100Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_+0261202T000100Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/1969/12/31/23/1_19691231T235959Z_19691231T235959Z.jsonl",
            NameProblem::Time,
        ),
        (
            "z/2026/12/02/01/1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::DateLevels,
        ),
        (
            "z/2026/12/2/00/1_20261202T000000Z_20261202T000100Z.jsonl",
            NameProblem::DateLevels,
        ),
        (
            "z/2026/12/02/00/1_20261202T000000Z_2026120éT000100Z.jsonl",
            NameProblem::Time,
        ),
    ] {
        assert_eq!(problem(name), want, "{name}");
    }
    assert_eq!(
        LogObjectName::from_key(ok, "q").unwrap_err().problem,
        NameProblem::Prefix
    );
    assert_eq!(
        LogObjectName::from_key(&format!("pp/{ok}"), "p")
            .unwrap_err()
            .problem,
        NameProblem::Prefix
    );
    assert!(LogObjectName::from_key(&format!("p/{ok}"), "p").is_ok());
    assert!(LogObjectName::from_key(ok, "").is_ok());
}

#[test]
fn the_hive_layout_names_its_folders_by_partition_column() {
    let plain: LogObjectName =
        "z/2026/12/02/07/000000000003_20261202T065900Z_20261202T070100Z.jsonl.zst"
            .parse()
            .expect("plain");
    assert_eq!(plain.layout, Layout::Plain);
    let hive = LogObjectName {
        layout: Layout::Hive,
        ..plain.clone()
    };
    let text = hive.to_string();
    assert_eq!(
        text,
        "log_zone=z/log_date=2026-12-02/log_hour=07/000000000003_20261202T065900.000000000Z_20261202T070100.000000000Z.jsonl.zst"
    );
    assert_eq!(text.parse::<LogObjectName>(), Ok(hive.clone()));
    assert!(hive
        .manifest_name()
        .starts_with("log_zone=z/log_date=2026-12-02/log_hour=07/"));
    let problem = |name: &str| name.parse::<LogObjectName>().unwrap_err().problem;
    let file = "000000000003_20261202T065900Z_20261202T070100Z.jsonl";
    for (name, want) in [
        (
            format!("zone=z/log_date=2026-12-02/log_hour=07/{file}"),
            NameProblem::Layout,
        ),
        (
            format!("log_zone=z/date=2026-12-02/log_hour=07/{file}"),
            NameProblem::Layout,
        ),
        (
            format!("log_zone=z/log_date=2026-12-02/hour=07/{file}"),
            NameProblem::Layout,
        ),
        (
            format!("log_zone=/log_date=2026-12-02/log_hour=07/{file}"),
            NameProblem::Layout,
        ),
        (
            format!("log_zone=z/log_date=2026-12-02/log_hour=08/{file}"),
            NameProblem::DateLevels,
        ),
        (
            format!("log_zone=z/log_date=2026-12-02/{file}"),
            NameProblem::Layout,
        ),
        (
            format!("log_zone=z/log_date=2026_12_02/log_hour=07/{file}"),
            NameProblem::DateLevels,
        ),
        (
            format!("log_zone=z/log_date=2026-1-02/log_hour=07/{file}"),
            NameProblem::DateLevels,
        ),
        (
            format!("log_zone=z/log_date=2026-12-0é/log_hour=07/{file}"),
            NameProblem::DateLevels,
        ),
    ] {
        assert_eq!(problem(&name), want, "{name}");
    }
}

fn arb_name() -> impl Strategy<Value = LogObjectName> {
    (
        "[A-Za-z0-9._-]{1,12}",
        any::<u64>(),
        0..=i64::MAX as u64,
        0..=i64::MAX as u64,
        prop::sample::select(LogFormat::ALL.to_vec()),
        prop_oneof![Just(Layout::Plain), Just(Layout::Hive)],
    )
        .prop_map(
            |(zone, number, start_ns, cutoff_ns, format, layout)| LogObjectName {
                zone,
                number,
                start_ns,
                cutoff_ns,
                format,
                layout,
            },
        )
}

proptest! {
    #[test]
    fn display_then_parse_gives_the_same_name(name in arb_name()) {
        let text = name.to_string();
        prop_assert_eq!(text.parse::<LogObjectName>(), Ok(name.clone()));
        let manifest = name.manifest_name();
        prop_assert!(manifest.parse::<LogObjectName>().is_err());
        prop_assert_eq!(manifest.strip_suffix(MANIFEST_SUFFIX), text.strip_suffix(&format!(".{}", name.format.extension())));
    }

    #[test]
    fn a_later_window_sorts_after_an_earlier_one(
        first in arb_name(),
        later_by in 0..=1_000_000_000_000_000u64,
        more in 1..1_000u64,
        start_ns in 0..=i64::MAX as u64,
        format in prop::sample::select(LogFormat::ALL.to_vec()),
    ) {
        // The writer's order: the next window of the zone has a greater
        // number and a cutoff not before the last one.
        let first = LogObjectName { number: first.number % 999_999_000_000, ..first };
        let second = LogObjectName {
            number: first.number + more,
            cutoff_ns: first.cutoff_ns.saturating_add(later_by).min(i64::MAX as u64),
            start_ns,
            format,
            ..first.clone()
        };
        prop_assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn no_text_makes_the_parser_panic(text in "\\PC{0,80}") {
        let _ = text.parse::<LogObjectName>();
        let _ = LogObjectName::from_key(&text, "p");
    }

    #[test]
    fn mangled_names_give_an_error_never_a_panic(
        name in arb_name(),
        at in any::<prop::sample::Index>(),
        with in any::<char>(),
    ) {
        let mut text: Vec<char> = name.to_string().chars().collect();
        let i = at.index(text.len());
        text[i] = with;
        let text: String = text.into_iter().collect();
        // What still parses (another zone character, another digit that
        // still makes a valid time) is a name that reads back the same.
        if let Ok(parsed) = text.parse::<LogObjectName>() {
            prop_assert_eq!(parsed.to_string().parse::<LogObjectName>(), Ok(parsed));
        }
    }
}
