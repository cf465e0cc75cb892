//! The console in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver (both installed by `.ci/run`). A reader's and an operator's paths through the
//! pages, with JavaScript on and then off (the pages have none; they must not need it):
//! the home page and a category's subscribe link, a search, a source's page and an entry's,
//! and a source added through the form with the admin token, then fetched. Screenshots of `/`
//! and `/sources` are written under `target/screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::*;

const TOKEN: &str = "browser-admin-token-0123456789";

/// chromedriver on a port it picks itself (no race for a free one); killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver cannot be started ({e}): the browser tests need Debian's \
                     chromium and chromium-driver; `bash .ci/run` installs them"
                )
            });
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("ChromeDriver was started successfully on port ")
                    .map(|p| p.trim_end_matches('.').to_string())
            })
            .expect("chromedriver names its port");
        // Keep reading its output, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, javascript: bool) -> Client {
    let mut options = serde_json::json!({
        "binary": "/usr/bin/chromium",
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1100,1400", "--disable-background-networking", "--no-first-run"],
    });
    if !javascript {
        options["prefs"] =
            serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("target/screenshots");
    dir
}

/// Runs a blocking helper (the harness's HTTP client, the daemon's output) on a thread of its
/// own: it starts a runtime, which a thread driving this test's cannot.
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("helper thread"))
}

/// Clicks what `locator` finds and waits (at most 30 s) for the page it leads to: the one
/// with `expect` (a CSS selector such as `body[data-page=search]`). A click returns when the
/// browser has acted on it, which may be before the next page has arrived.
async fn click_to(c: &Client, locator: Locator<'_>, expect: &str) {
    c.find(locator)
        .await
        .expect("what to click")
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(expect))
        .await
        .unwrap_or_else(|e| panic!("no {expect} after the click: {e}"));
}

async fn text_of(c: &Client) -> String {
    c.source().await.expect("page source")
}

/// A reader's and an operator's walk through the console; `add` is the URL the operator adds.
async fn walk(c: &Client, serve: &ServeGuard, add: &str, label: &str) -> String {
    // `/`: the categories and their subscribe links.
    c.goto(&serve.url("/")).await.expect("open /");
    assert_eq!(c.title().await.unwrap(), "Feeds · tributary", "{label}");
    let shot = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("home-{label}.png")), shot).unwrap();
    let atom = c
        .find(Locator::Css(&format!(
            "a[href$='/feeds/{}.atom']",
            pct(FINANCE)
        )))
        .await
        .expect("the 金融 Atom link")
        .attr("href")
        .await
        .unwrap()
        .expect("href");
    let feed = blocking(|| http_get(&atom));
    assert_eq!(feed.status, 200, "{label}: {atom}");
    assert!(feed.body.contains("人民币汇率中间价上调"), "{label}");
    click_to(c, Locator::LinkText(FINANCE), "body[data-page=scope]").await;
    assert!(
        text_of(c).await.contains("人民币汇率中间价上调"),
        "{label}: category page"
    );

    // A search from the box in the header.
    c.find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys("汇率")
        .await
        .unwrap();
    click_to(
        c,
        Locator::Css("form.search button"),
        "body[data-page=search]",
    )
    .await;
    let url = c.current_url().await.unwrap();
    assert!(url.path().ends_with("/search"), "{label}: {url}");
    let page = text_of(c).await;
    assert!(
        page.contains("人民币汇率中间价上调"),
        "{label}: search results"
    );
    assert!(!page.contains("Bond yields fall"), "{label}: only matches");

    // The sources, one source, one entry.
    c.goto(&serve.url("/sources")).await.unwrap();
    click_to(c, Locator::LinkText(CS_NAME), "body[data-page=source]").await;
    assert!(text_of(c).await.contains("healthy"), "{label}: source page");
    click_to(c, Locator::Css("ul.entries li a"), "body[data-page=entry]").await;
    assert!(
        c.current_url().await.unwrap().path().contains("/entries/"),
        "{label}"
    );
    assert!(
        text_of(c).await.contains("Merged story"),
        "{label}: entry page"
    );

    // Add a source with the token.
    c.goto(&serve.url("/sources")).await.unwrap();
    let add_form = "form.admin:has(input[name=url])";
    c.find(Locator::Css(&format!("{add_form} input[name=url]")))
        .await
        .unwrap()
        .send_keys(add)
        .await
        .unwrap();
    c.find(Locator::Css(&format!("{add_form} input[name=category]")))
        .await
        .unwrap()
        .send_keys("added")
        .await
        .unwrap();
    c.find(Locator::Css(&format!("{add_form} input[name=token]")))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click_to(c, Locator::Css(&format!("{add_form} button")), "p.flash").await;
    let flash = c
        .find(Locator::Css("p.flash"))
        .await
        .expect("what happened")
        .text()
        .await
        .unwrap();
    assert!(flash.contains(" added: "), "{label}: {flash}");
    let id = flash.split(' ').next().unwrap().to_string();
    let fetched = blocking(|| {
        serve.until(Duration::from_secs(30), || {
            let all = api_sources(serve);
            let s = all.iter().find(|s| s["id"] == id.as_str())?;
            (s["last_status"] == "ok").then_some(())
        })
    });
    assert!(
        fetched.is_some(),
        "{label}: {id} fetched\n{}",
        blocking(|| serve.logs())
    );
    c.goto(&serve.url("/sources")).await.unwrap();
    let shot = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("sources-{label}.png")), shot).unwrap();
    c.goto(&serve.url(&format!("/sources/{id}"))).await.unwrap();
    assert!(
        text_of(c).await.contains("healthy"),
        "{label}: the added source's page"
    );
    id
}

#[test]
fn the_console_works_in_chromium_with_and_without_javascript() {
    let fixtures = FixtureServer::start();
    fixtures.set(
        "/blog/index.html",
        format!(
            "<!doctype html><html><head><title>Blog</title><link rel=\"alternate\" \
             type=\"application/atom+xml\" href=\"{TECH_FILE}\"></head><body>posts</body></html>"
        ),
    );
    fixtures.set_content_type("/blog/index.html", "text/html; charset=utf-8");
    fixtures.set(
        "/mirror/tech.atom",
        fixture_bytes(TECH_FILE.trim_start_matches('/')),
    );
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, CAIXIN_ID),
    ];
    let config = write_config(dir.path(), listen, &sources);
    with_admin_token(&config, TOKEN);
    let (code, out, err) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let c = browser(&driver, true).await;
        let added = walk(&c, &serve, &fixtures.url("/blog/index.html"), "js").await;
        assert_eq!(added, "example-tech-blog", "named by the feed's title");
        c.close().await.unwrap();
        // Without JavaScript, a feed's own URL this time.
        let c = browser(&driver, false).await;
        walk(&c, &serve, &fixtures.url("/mirror/tech.atom"), "nojs").await;
        c.close().await.unwrap();
    });
}
