//! Rules through the binary: a global block, a category keep and a source's rewrites in every
//! kind of feed and format; the rules taken away by a reload bring the entries back with no
//! fetch; a blocked wire copy keeps its story out of another source's feed; a subscriber's
//! `?filter=`, `?filterout=`, `?since=`, `?max_age=`; `rules test` and `check`.

use std::process::Command;
use std::time::Duration;

use crate::common::served::{parse, Format, FORMATS};
use crate::common::*;

/// An RSS feed of `(title, html, hours ago)` items, dated from now.
fn rss(name: &str, items: &[(&str, &str, i64)]) -> String {
    let now = chrono::Utc::now();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{name}</title><link>https://{name}.example/</link>"
    );
    for (n, (title, html, hours)) in items.iter().enumerate() {
        let date = (now - chrono::Duration::hours(*hours)).to_rfc2822();
        out.push_str(&format!(
            "<item><title>{title}</title><link>https://{name}.example/{n}.html</link><guid>https://{name}.example/{n}.html</guid><pubDate>{date}</pubDate><description><![CDATA[{html}]]></description></item>"
        ));
    }
    out.push_str("</channel></rss>");
    out
}

const RULES: &str = r#"
[rules]
block = [{ title = "/广告|推广/" }]

[categories."金融".rules]
keep = [{ content = "碳中和" }, { title = "ＩＰＯ" }]
"#;

const CS_RULES: &str = r#"
[sources.rules]
rewrite = [
  { field = "title", pattern = "^【独家】", replace = "" },
  { field = "content", pattern = "^中证网讯（记者[^）]*）", replace = "" },
]
remove = [".share"]
"#;

/// The config: three sources (two in 金融, one in 科技), with or without the rules.
fn config(server: &FixtureServer, listen: std::net::SocketAddr, rules: bool) -> String {
    let sources = [
        Source::new("cs", "中证网", &server.url("/cs.xml"), "金融").tags(&["资讯"]),
        Source::new("fin", "财经", &server.url("/fin.xml"), "金融"),
        Source::new("tech", "Tech", &server.url("/tech.xml"), "科技"),
    ];
    let text = config_text(listen, "tributary.db", &sources);
    if !rules {
        return text;
    }
    // The source's own table goes right after its `[[sources]]` keys.
    let text = text.replacen(
        "\n[[sources]]\nid = \"fin\"",
        &format!("{CS_RULES}\n[[sources]]\nid = \"fin\""),
        1,
    );
    format!("{RULES}\n{text}").replacen("[server]", "[server]", 1)
}

fn serve_fixtures(server: &FixtureServer) {
    server.set(
        "/cs.xml",
        rss(
            "cs",
            &[
                ("【独家】央行降准释放流动性", "<p>中证网讯（记者 张三）央行宣布降准，支持碳中和项目。</p><p class=\"share\">分享到微博</p>", 1),
                ("【广告】理财产品限时推广", "<p>碳中和主题理财。</p>", 2),
                ("市场综述", "<p>沪指小幅收涨。</p>", 3),
                ("旧闻：碳中和路线图", "<p>碳中和路线图发布。</p>", 24 * 10),
            ],
        ),
    );
    server.set(
        "/fin.xml",
        rss(
            "fin",
            &[
                ("碳中和债券发行", "<p>多家银行发行碳中和债券。</p>", 1),
                ("某公司 IPO 获批", "<p>上市委会议通过。</p>", 2),
                ("股市收盘", "<p>两市成交额下降。</p>", 3),
            ],
        ),
    );
    server.set(
        "/tech.xml",
        rss(
            "tech",
            &[
                ("新芯片发布", "<p>性能提升。</p>", 1),
                ("【推广】新手机预售", "<p>限时优惠。</p>", 2),
            ],
        ),
    );
}

/// Every feed kind: merged, each category, each source, a tag.
fn feed_paths() -> Vec<String> {
    vec![
        "/feeds/all".into(),
        format!("/feeds/{}", pct("金融")),
        format!("/feeds/{}", pct("科技")),
        "/sources/cs".into(),
        "/sources/fin".into(),
        "/sources/tech".into(),
        format!("/tags/{}", pct("资讯")),
    ]
}

fn titles(serve: &ServeGuard, path: &str, format: Format) -> Vec<(String, String)> {
    let url = serve.url(&format!("{path}.{}", format.ext()));
    let resp = http_get(&url);
    assert_eq!(resp.status, 200, "{url}: {}", resp.body);
    assert_well_formed(&url, &resp);
    parse(format, &resp.body)
        .into_iter()
        .map(|s| (s.title, s.html))
        .collect()
}

fn signal_hup(serve: &ServeGuard) {
    let status = Command::new("kill")
        .args(["-HUP", &serve.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -HUP");
}

/// The three fixture sources fetched once, then served.
struct Stack {
    server: FixtureServer,
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    listen: std::net::SocketAddr,
    serve: ServeGuard,
}

impl Stack {
    fn start(rules: bool) -> Stack {
        let server = FixtureServer::start();
        serve_fixtures(&server);
        let dir = tempfile::tempdir().expect("temp dir");
        let listen = free_addr();
        let path = write_config_text(dir.path(), &config(&server, listen, rules));
        let (code, out, err) = run_fetch(&path, &[]);
        assert_eq!(code, 0, "{out}{err}");
        let mut serve = spawn_serve(&path, listen);
        serve.wait_healthz();
        Stack {
            server,
            dir,
            path,
            listen,
            serve,
        }
    }
}

#[test]
fn block_keep_and_rewrite_rules_shape_every_feed_and_a_reload_without_them_brings_all_back() {
    let Stack {
        server,
        dir: _dir,
        path,
        listen,
        serve,
    } = Stack::start(true);
    let fetched = server.all_hits().len();
    for format in FORMATS {
        for path in feed_paths() {
            let shown = titles(&serve, &path, format);
            let names: Vec<&str> = shown.iter().map(|(t, _)| t.as_str()).collect();
            assert!(
                !names
                    .iter()
                    .any(|t| t.contains("广告") || t.contains("推广")),
                "{path} {format:?}: an ad got through: {names:?}"
            );
            let expected: &[&str] = match path.as_str() {
                "/feeds/all" => &[
                    "央行降准释放流动性",
                    "碳中和债券发行",
                    "某公司 IPO 获批",
                    "新芯片发布",
                    "旧闻：碳中和路线图",
                ],
                p if p.contains(&pct("金融")) => &[
                    "央行降准释放流动性",
                    "碳中和债券发行",
                    "某公司 IPO 获批",
                    "旧闻：碳中和路线图",
                ],
                p if p.contains(&pct("科技")) || p == "/sources/tech" => &["新芯片发布"],
                "/sources/fin" => &["碳中和债券发行", "某公司 IPO 获批"],
                _ => &["央行降准释放流动性", "旧闻：碳中和路线图"],
            };
            let mut sorted = names.clone();
            sorted.sort_unstable();
            let mut want = expected.to_vec();
            want.sort_unstable();
            assert_eq!(sorted, want, "{path} {format:?}");
            for (title, html) in &shown {
                assert!(!title.contains("【独家】"), "{path} {format:?}: {title}");
                assert!(
                    !html.contains("中证网讯") && !html.contains("分享到微博"),
                    "{path} {format:?}: {html}"
                );
                if title == "央行降准释放流动性" {
                    assert!(
                        html.contains("央行宣布降准"),
                        "{path} {format:?}: the text stays: {html}"
                    );
                }
            }
        }
    }

    // The rules go; a reload shows every stored entry again, in the source's own words.
    std::fs::write(&path, config(&server, listen, false)).expect("rewriting the config");
    signal_hup(&serve);
    assert!(
        serve.log_within("configuration reloaded", Duration::from_secs(30)),
        "{}",
        serve.logs()
    );
    let all = titles(&serve, "/feeds/all", Format::Json);
    let names: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(
        names.contains(&"【广告】理财产品限时推广")
            && names.contains(&"【独家】央行降准释放流动性"),
        "{names:?}"
    );
    assert!(all.iter().any(|(_, h)| h.contains("中证网讯（记者 张三）")));
    assert_eq!(server.all_hits().len(), fetched, "no fetch was needed");
}

#[test]
fn a_subscription_narrows_any_feed_is_cached_apart_and_a_bad_parameter_is_a_400() {
    let stack = Stack::start(false);
    let serve = &stack.serve;
    let narrowed = format!("filter={}&filterout={}", pct("碳中和"), pct("/广告|推广/"));
    for format in FORMATS {
        for path in feed_paths() {
            let whole = http_get(&serve.url(&format!("{path}.{}", format.ext())));
            let url = serve.url(&format!("{path}.{}?{narrowed}", format.ext()));
            let resp = http_get(&url);
            assert_eq!(resp.status, 200, "{url}");
            assert_well_formed(&url, &resp);
            let shown = parse(format, &resp.body);
            for s in &shown {
                assert!(
                    s.title.contains("碳中和") || s.html.contains("碳中和"),
                    "{url}: {}",
                    s.title
                );
                assert!(
                    !s.title.contains("广告") && !s.title.contains("推广"),
                    "{url}: {}",
                    s.title
                );
            }
            let expect = match path.as_str() {
                p if p.contains(&pct("科技")) || p == "/sources/tech" => 0,
                "/sources/fin" => 1,
                "/feeds/all" => 3,
                p if p.contains(&pct("金融")) => 3,
                _ => 2,
            };
            assert_eq!(shown.len(), expect, "{url}");
            assert_ne!(
                whole.header("etag"),
                resp.header("etag"),
                "{url}: cached apart"
            );
        }
    }
    // The entry ten days old is left out by ?max_age=7d (and by ?since= a week ago).
    let week_ago = (chrono::Utc::now() - chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    for query in ["max_age=7d", "max_age=7", &format!("since={week_ago}")] {
        let shown = parse(
            Format::Json,
            &http_get(&serve.url(&format!("/sources/cs.json?{query}"))).body,
        );
        let names: Vec<String> = shown.into_iter().map(|s| s.title).collect();
        assert_eq!(names.len(), 3, "{query}: {names:?}");
        assert!(
            !names.iter().any(|t| t.contains("旧闻")),
            "{query}: {names:?}"
        );
    }
    for (query, name) in [
        ("filter=%2F(%2F", "filter"),
        ("filterout=%2F%5B%2F", "filterout"),
        ("since=yesterday", "since"),
        ("max_age=3x", "max_age"),
    ] {
        for path in [
            "/feeds/all.rss",
            "/sources/cs.atom",
            "/tags/%E8%B5%84%E8%AE%AF.json",
        ] {
            let resp = http_get(&serve.url(&format!("{path}?{query}")));
            assert_eq!(resp.status, 400, "{path}?{query}");
            assert!(
                resp.body.starts_with(&format!("{name}=")),
                "{path}?{query}: {}",
                resp.body
            );
        }
    }
}

/// Two sources carry one story, near-duplicates in their words; one source blocks its copy.
#[test]
fn a_blocked_copy_keeps_its_story_out_of_every_feed_unless_the_other_source_keeps_it() {
    let server = FixtureServer::start();
    let body = "<p>某基金公司今日公告，旗下新能源主题基金将于下周开始发行，募集规模上限为五十亿元，\
                基金经理表示将重点配置光伏、风电和储能产业链中具有成长性的上市公司，同时控制回撤风险，\
                业内人士认为，在政策支持和产业景气的共同作用下，新能源板块的长期配置价值依然突出。</p>";
    server.set(
        "/a.xml",
        rss(
            "a",
            &[
                ("【推广】新能源基金下周发行", body, 1),
                ("其他新闻", "<p>别的事情发生了。</p>", 2),
            ],
        ),
    );
    let b_body = body.replace("今日公告", "周二公告");
    server.set("/b.xml", rss("b", &[("新能源基金下周发行", &b_body, 1)]));
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let sources = [
        Source::new("a", "A", &server.url("/a.xml"), "金融"),
        Source::new("b", "B", &server.url("/b.xml"), "金融"),
    ];
    let a_rules = "\n[sources.rules]\nblock = [{ title = \"推广\" }]\n";
    let text = config_text(listen, "tributary.db", &sources).replacen(
        "\n[[sources]]\nid = \"b\"",
        &format!("{a_rules}\n[[sources]]\nid = \"b\""),
        1,
    );
    let path = write_config_text(dir.path(), &text);
    let (code, out, err) = run_fetch(&path, &[]);
    assert_eq!(code, 0, "{out}{err}");

    let mut serve = spawn_serve(&path, listen);
    serve.wait_healthz();
    for format in FORMATS {
        for feed in ["/sources/b", "/sources/a", "/feeds/all"] {
            let shown = titles(&serve, feed, format);
            assert!(
                !shown.iter().any(|(t, _)| t.contains("新能源基金")),
                "{feed} {format:?}: the blocked story came through: {shown:?}"
            );
        }
    }
    assert_eq!(
        titles(&serve, "/sources/a", Format::Json).len(),
        1,
        "the other item stays"
    );
    drop(serve);

    let (code, out, err) = run_bounded(rules_test(&path, "b"), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("dropped") && out.contains("its story is blocked at source \"a\""),
        "{out}"
    );
    assert!(
        out.contains("block #1 of [sources.rules] of \"a\": { title = \"推广\" }"),
        "{out}"
    );

    // A keep rule of b's own shows b's copy; a blocks its own still.
    let b_rules = "\n[sources.rules]\nkeep = [{ title = \"基金\" }]\n";
    std::fs::write(&path, format!("{text}{b_rules}")).expect("config");
    let (code, out, err) = run_bounded(rules_test(&path, "b"), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kept by keep #1 of [sources.rules] of \"b\""),
        "{out}"
    );
    let (_, out, _) = run_bounded(rules_test(&path, "a"), Duration::from_secs(60));
    assert!(
        out.contains("dropped by block #1 of [sources.rules] of \"a\""),
        "{out}"
    );
    assert!(out.contains("1 kept (0 rewritten), 1 dropped"), "{out}");
}

fn rules_test(config: &std::path::Path, id: &str) -> Command {
    let mut cmd = tributary_command(config);
    cmd.args(["rules", "test", id]);
    cmd
}

#[test]
fn rules_test_and_check_print_each_entrys_verdict_and_rule() {
    let server = FixtureServer::start();
    serve_fixtures(&server);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config_text(dir.path(), &config(&server, free_addr(), true));
    let (code, out, err) = run_fetch(&path, &["cs"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_bounded(rules_test(&path, "cs"), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("cs: its 4 newest entries under [rules], [categories.\"金融\".rules], [sources.rules] of \"cs\""), "{out}");
    for line in [
        "dropped by block #1 of [rules]: { title = \"/广告|推广/\" }",
        "dropped: matches no keep rule in its scope",
        "kept by keep #1 of [categories.\"金融\".rules]: { content = \"碳中和\" }; changed by rewrite #1 of [sources.rules] of \"cs\"",
        "2 kept (1 rewritten), 2 dropped",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(out.contains("rewritten "), "{out}");

    let mut check = tributary_command(&path);
    check.args(["check", "cs"]);
    let (code, out, err) = run_bounded(check, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("\nrules: ").count(), 4, "{out}");
    assert!(
        out.contains("rules: dropped by block #1 of [rules]"),
        "{out}"
    );
    assert!(
        out.contains("changed by remove #1 of [sources.rules] of \"cs\": \".share\""),
        "{out}"
    );
}

/// README's example of the rule language loads as it is written.
#[test]
fn the_readme_rules_example_loads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("### Rules: keep, block and rewrite what sources say")
        .nth(1)
        .expect("the rules section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("a toml block");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config_text(dir.path(), example);
    let mut check = tributary_command(&path);
    check.args(["config", "check"]);
    let (code, out, err) = run_bounded(check, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
}
