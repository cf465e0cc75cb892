//! Feeds in GBK, GB18030 and Big5, declared in the XML prolog or only in the HTTP header, and
//! a UTF-8 feed that claims to be GBK: `fetch` stores each title exactly, and the served feed
//! carries it unchanged.

use std::fs;

use crate::common::*;

struct Case {
    file: String,
    charset: Option<String>,
    title: String,
}

fn cases() -> Vec<Case> {
    let dir = fixtures_dir().join("../encodings");
    let table = fs::read_to_string(dir.join("expected.tsv")).expect("reading expected.tsv");
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "expected.tsv line {line:?}");
            Case {
                file: cols[0].to_string(),
                charset: Some(cols[1].to_string()).filter(|c| c != "-"),
                title: cols[2].to_string(),
            }
        })
        .collect()
}

#[test]
fn legacy_chinese_encodings_are_read_exactly() {
    let cases = cases();
    assert!(cases.len() >= 6, "expected.tsv lists every encoding case");
    let server = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sources = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let path = format!("/enc/{}", case.file);
        let body = fs::read(fixtures_dir().join("../encodings").join(&case.file))
            .expect("reading an encoding fixture");
        // The bytes must really be legacy-encoded (or, for the mislabelled case, UTF-8): a
        // fixture that is secretly UTF-8 would prove nothing.
        assert_eq!(
            std::str::from_utf8(&body).is_ok(),
            case.file.starts_with("utf8"),
            "{}: UTF-8 validity of the fixture bytes",
            case.file
        );
        server.set(&path, body);
        // Without a charset the header says nothing about the encoding; with one it is the
        // only place the encoding is named.
        let content_type = match &case.charset {
            Some(cs) => format!("application/rss+xml; charset={cs}"),
            None => "application/rss+xml".to_string(),
        };
        server.set_content_type(&path, &content_type);
        sources.push(Source::new(
            &format!("enc-{i}"),
            &case.file,
            &server.url(&path),
            "编码",
        ));
    }
    let listen = free_addr();
    let config = write_config(dir.path(), listen, &sources);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "fetch failed:\n{stdout}\n{stderr}");

    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    for (i, case) in cases.iter().enumerate() {
        let feed = http_get(&serve.url(&format!("/sources/enc-{i}.json")));
        assert_eq!(feed.status, 200, "{}", case.file);
        let json: serde_json::Value = serde_json::from_str(&feed.body).expect("JSON Feed");
        let titles: Vec<&str> = json["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["title"].as_str())
            .collect();
        assert!(
            titles.contains(&case.title.as_str()),
            "{} (charset header {:?}): expected title {:?}, got {titles:?}",
            case.file,
            case.charset,
            case.title
        );
        assert!(
            !feed.body.contains('\u{FFFD}'),
            "{}: replacement characters in the served feed",
            case.file
        );
    }
}
