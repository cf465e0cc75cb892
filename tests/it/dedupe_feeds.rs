//! Three sources carrying overlapping stories (a wire service, a portal republishing it, a
//! flash-news feed): the category feed holds each story once, naming every source, in every
//! format and as newsboat sees it; per-source feeds keep each source's own entries; a story
//! with other numbers stays separate.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::common::*;

const DIR: &str = "../dedupe-feeds";

/// Story → the sources expected on its one merged item.
fn expected_clusters() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    BTreeMap::from([
        (
            "央行：保持流动性合理充裕 引导市场利率围绕政策利率波动",
            BTreeSet::from(["wire", "portal", "flash"]),
        ),
        (
            "恒泰股份：全资子公司中标5870万元智慧园区项目",
            BTreeSet::from(["wire", "flash"]),
        ),
        (
            "Acme Corp wins $58.7 million smart-park contract",
            BTreeSet::from(["wire", "portal"]),
        ),
        (
            "星河科技：中标1250万元数据中心项目",
            BTreeSet::from(["wire"]),
        ),
        (
            "星河科技：中标3460万元智慧城市项目",
            BTreeSet::from(["portal"]),
        ),
        (
            "国家统计局：2月制造业PMI为50.8%",
            BTreeSet::from(["portal"]),
        ),
    ])
}

struct Setup {
    serve: ServeGuard,
    config: std::path::PathBuf,
    fixtures: FixtureServer,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let server = FixtureServer::start();
    for file in ["wire.xml", "portal.xml", "flash.json"] {
        let body = fs::read(fixtures_dir().join(DIR).join(file)).expect("reading a dedupe fixture");
        server.set(&format!("/dd/{file}"), body);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let sources = [
        Source::new("wire", "财经通讯社", &server.url("/dd/wire.xml"), "金融"),
        Source::new("portal", "门户财经", &server.url("/dd/portal.xml"), "金融"),
        Source::new("flash", "快讯台", &server.url("/dd/flash.json"), "金融"),
    ];
    let config = write_config(dir.path(), listen, &sources);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "fetch failed:\n{stdout}\n{stderr}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    Setup {
        serve,
        config,
        fixtures: server,
        _dir: dir,
    }
}

#[test]
fn each_story_appears_once_naming_every_source() {
    let s = setup();
    let feed = http_get(&s.serve.url(&format!("/feeds/{}.json", pct("金融"))));
    assert_eq!(feed.status, 200);
    let json: serde_json::Value = serde_json::from_str(&feed.body).expect("JSON Feed");
    let items = json["items"].as_array().expect("items");
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in items {
        let title = item["title"].as_str().expect("title").to_string();
        let sources: BTreeSet<String> = item["_tributary"]["sources"]
            .as_array()
            .expect("_tributary.sources")
            .iter()
            .map(|s| s["id"].as_str().expect("source id").to_string())
            .collect();
        assert!(
            got.insert(title.clone(), sources).is_none(),
            "{title:?} appears twice in the merged feed"
        );
        if item["_tributary"]["sources"].as_array().map_or(0, Vec::len) > 1 {
            let html = item["content_html"].as_str().unwrap_or_default();
            assert!(
                html.contains("Also reported by"),
                "{title}: no 'also reported by' line"
            );
        }
    }
    let want: BTreeMap<String, BTreeSet<String>> = expected_clusters()
        .into_iter()
        .map(|(t, s)| (t.to_string(), s.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(got, want, "merged items and the sources each lists");

    // The same count in RSS and Atom, with Atom's via links for the other sources.
    let atom = http_get(&s.serve.url(&format!("/feeds/{}.atom", pct("金融")))).body;
    assert_eq!(atom.matches("<entry>").count(), want.len(), "{atom}");
    assert_eq!(
        atom.matches("rel=\"via\"").count(),
        2 + 1 + 1,
        "via links: {atom}"
    );
    let rss = http_get(&s.serve.url(&format!("/feeds/{}.rss", pct("金融")))).body;
    assert_eq!(rss.matches("<item>").count(), want.len());

    // A source's own feed still shows all of its entries.
    for (id, n) in [("wire", 4), ("portal", 4), ("flash", 2)] {
        let own = http_get(&s.serve.url(&format!("/sources/{id}.json"))).body;
        let own: serde_json::Value = serde_json::from_str(&own).expect("JSON Feed");
        assert_eq!(
            own["items"].as_array().map(Vec::len),
            Some(n),
            "/sources/{id}.json"
        );
    }
}

#[test]
fn newsboat_sees_one_item_per_story() {
    require_newsboat();
    let s = setup();
    let work = s.config.parent().expect("config folder").join("newsboat");
    fs::create_dir_all(&work).expect("newsboat folder");
    let conf = work.join("config");
    fs::write(&conf, "").expect("empty newsboat config");
    for ext in ["atom", "rss"] {
        let url = s.serve.url(&format!("/feeds/{}.{ext}", pct("金融")));
        let (rows, stdout, stderr) = newsboat_reload(
            &url,
            &work.join(format!("urls-{ext}")),
            &work.join(format!("cache-{ext}.db")),
            &conf,
            &work,
        );
        let titles: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
        let want: BTreeSet<String> = expected_clusters().keys().map(|t| t.to_string()).collect();
        assert_eq!(titles, want, "newsboat {ext}\n{stdout}\n{stderr}");
        assert_eq!(rows.len(), want.len(), "newsboat {ext}: one row per story");
    }
}

#[test]
fn explain_names_the_rule_and_score_of_each_member() {
    let s = setup();
    let feed = http_get(&s.serve.url(&format!("/feeds/{}.json", pct("金融"))));
    let json: serde_json::Value = serde_json::from_str(&feed.body).expect("JSON Feed");
    let pboc = json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["title"].as_str().is_some_and(|t| t.starts_with("央行")))
        .expect("the central bank story");
    let id = pboc["_tributary"]["entry_id"].as_i64().expect("entry_id");
    let mut cmd = tributary_command(&s.config);
    cmd.args(["dedupe", "--explain", &id.to_string()]);
    let (code, stdout, stderr) = run_bounded(cmd, std::time::Duration::from_secs(30));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("3 members"), "{stdout}");
    assert!(stdout.contains("first in cluster"), "{stdout}");
    // The portal's wire copy and the flash's trimmed copy each name a rule and a score.
    let merged: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" with entry "))
        .collect();
    assert_eq!(merged.len(), 2, "{stdout}");
    for line in merged {
        assert!(
            ["simhash", "body-containment", "rewrite", "headline"]
                .iter()
                .any(|r| line.contains(r)),
            "{line}"
        );
    }
}

#[test]
fn an_edit_that_changes_the_story_moves_the_entry_out_of_its_cluster() {
    let s = setup();
    let portal = String::from_utf8(s.fixtures.get("/dd/portal.xml")).expect("UTF-8 fixture");
    // Same guid, new story: the portal replaced its Acme copy with other news.
    let edited = portal
        .replace(
            "Acme wins $58.7 million contract for Suzhou smart park",
            "Globex opens research centre in Shenzhen",
        )
        .replace(
            "Acme Corp's wholly owned unit has won a $58.7 million contract to build a smart industrial park in Suzhou, the company said on Monday. It is Acme's largest order this year.",
            "Globex said on Monday it opened a research centre in Shenzhen with 300 engineers.",
        )
        .replace(
            "The 18-month project covers a park management platform, security monitoring and an energy management system, according to the filing.",
            "The centre will focus on battery materials.",
        );
    assert_ne!(edited, portal, "the fixture text to edit was found");
    s.fixtures.set("/dd/portal.xml", edited);
    let (code, stdout, stderr) = run_fetch(&s.config, &["portal"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("updated=1"), "{stdout}");

    let feed = http_get(&s.serve.url(&format!("/feeds/{}.json", pct("金融"))));
    let json: serde_json::Value = serde_json::from_str(&feed.body).expect("JSON Feed");
    let sources_of = |title: &str| -> Option<BTreeSet<String>> {
        json["items"]
            .as_array()?
            .iter()
            .find(|i| i["title"] == title)
            .map(|i| {
                i["_tributary"]["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["id"].as_str().map(String::from))
                    .collect()
            })
    };
    assert_eq!(
        sources_of("Acme Corp wins $58.7 million smart-park contract"),
        Some(BTreeSet::from(["wire".to_string()])),
        "the Acme story lost the portal"
    );
    assert_eq!(
        sources_of("Globex opens research centre in Shenzhen"),
        Some(BTreeSet::from(["portal".to_string()])),
        "the edited entry stands alone"
    );
}
