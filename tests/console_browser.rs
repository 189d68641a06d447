//! The admin console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) against the real gateway, a real upstream and a real HTTP
//! client checking what the proxy enforces after each step. Screenshots of the card list
//! and the edit page go to `target/console-screenshots/` (CI artifacts). The README's
//! picture, `docs/console.png`, is replaced only when `SCOPEGATE_UPDATE_DOCS_SCREENSHOT=1`
//! asks for it ([`update_docs_screenshot`]).
//!
//! Needs `chromium` and `chromedriver` (`.ci/install-chromium.sh`); without them the test
//! skips, except under `CI=true`, where it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::process::ChildGuard;
use support::*;

const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "browser-test-password";
const REPORTS: &str = "/Mediapartners/IRacme/Reports/daily";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    _child: ChildGuard,
    port: u16,
    _profile: TempDir,
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        _child: ChildGuard(child),
        port,
        _profile: TempDir::new(),
    };
    // Ready once /status says so (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = tokio::time::timeout(
            Duration::from_secs(2),
            try_get(&format!("http://127.0.0.1:{port}/status")),
        )
        .await
        {
            if r.is_some_and(|t| t.contains("\"ready\":true")) {
                return driver;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_get(url: &str) -> Option<String> {
    try_send("GET", url, &[]).await.map(|r| r.text())
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let profile = driver._profile.path("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// Scrolls the element to the middle of the window (clear of the sticky action bar), as a
/// person would, and clicks it.
async fn click(c: &Client, css: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    c.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::to_value(&el).unwrap()],
    )
    .await
    .unwrap();
    el.click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Clicks `css` and, if the button asks for confirmation, accepts it; then waits until the
/// next page has replaced this one.
async fn click_and_wait(c: &Client, css: &str, confirm: bool) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    click(c, css).await;
    if confirm {
        c.accept_alert()
            .await
            .unwrap_or_else(|e| panic!("confirm for {css}: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "no new page after {css}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c.wait()
        .for_element(Locator::Css("main"))
        .await
        .expect("the next page");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
        .trim()
        .to_owned()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Set to `1` to copy the card list's screenshot to `docs/console.png`. Off by default: a
/// test run writes under `target/` only, so `cargo test` never dirties the checkout (each
/// run's screenshot differs, if only in the "last used" times it shows).
const UPDATE_DOCS_SCREENSHOT: &str = "SCOPEGATE_UPDATE_DOCS_SCREENSHOT";

/// Replaces the README's `docs/console.png` with `shot` when [`UPDATE_DOCS_SCREENSHOT`]
/// asks for it.
fn update_docs_screenshot(shot: &Path) {
    if std::env::var(UPDATE_DOCS_SCREENSHOT).as_deref() != Ok("1") {
        return;
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(shot, docs.join("console.png")).unwrap();
    eprintln!("{UPDATE_DOCS_SCREENSHOT}=1: docs/console.png updated");
}

/// Sizes the window to the whole page, then saves a PNG.
async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(1000)
        .clamp(700, 4000) as u32;
    c.set_window_size(1400, height + 140).await.unwrap();
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap();
    c.set_window_size(1400, 1000).await.unwrap();
    path
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but chromium/chromedriver are missing: run .ci/install-chromium.sh"
        );
        eprintln!("skipping: chromium or chromedriver not installed (.ci/install-chromium.sh)");
        return;
    };

    let hash = scopegate::gateway::console::auth::hash_password(ADMIN_PASSWORD.as_bytes()).unwrap();
    let extra = format!(
        "state_dir: state\ninvalid_credentials_status: 401\nadmin:\n  users:\n    - {{name: {ADMIN}, password_hash: \"{hash}\"}}\n"
    );
    let h = Harness::start_with(&extra, &tokens_yaml()).await;
    std::fs::create_dir_all(h.dir.path("state")).unwrap();
    // Some traffic, so the cards and the usage panel have something to show.
    assert_eq!(
        proxy_get(&h, READER.sid, READER.secret, CAMPAIGNS).await,
        200
    );
    assert_eq!(
        proxy_get(&h, WRITER.sid, WRITER.secret, CAMPAIGNS).await,
        200
    );
    let console = format!("http://{}/console/", h.gateway.admin_addr);

    let driver = start_driver(&chromedriver).await;
    let c = browser(&driver, &chromium).await;

    // Log in.
    c.goto(&console).await.unwrap();
    c.wait().for_element(Locator::Id("user")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/login"));
    c.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(ADMIN)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    click_and_wait(&c, "form button[type=submit]", false).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/console/",
        "{}",
        c.source().await.unwrap()
    );
    let cards = c.find_all(Locator::Css("article.card")).await.unwrap();
    assert_eq!(cards.len(), 6, "one card per token");
    let reader_card = text_of(&c, "article.card[data-sid=SGreader]").await;
    assert!(
        reader_card.contains("campaigns:GET") && reader_card.contains("just now"),
        "{reader_card}"
    );
    let shot = screenshot(&c, "cards.png").await;
    update_docs_screenshot(&shot);

    // Create a token with campaigns:GET; the secret is shown once.
    click_and_wait(&c, "a.btn.primary[href='/console/new']", false).await;
    c.find(Locator::Id("account"))
        .await
        .unwrap()
        .send_keys("IRacme")
        .await
        .unwrap();
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("browser-made")
        .await
        .unwrap();
    c.find(Locator::Id("description"))
        .await
        .unwrap()
        .send_keys("Made in the console by the browser test")
        .await
        .unwrap();
    c.find(Locator::Id("primary_contact"))
        .await
        .unwrap()
        .send_keys("ops@acme.example")
        .await
        .unwrap();
    click(&c, ".scope-row[data-api=campaigns] label.switch").await;
    let get_box = c
        .find(Locator::Css("input[name=scope][value='campaigns:GET']"))
        .await
        .unwrap();
    assert!(
        get_box.is_selected().await.unwrap(),
        "the toggle checks GET"
    );
    screenshot(&c, "create.png").await;
    click_and_wait(&c, "#create", false).await;
    screenshot(&c, "secret-once.png").await;
    let sid = text_of(&c, "#new-sid").await;
    let secret = text_of(&c, "#new-secret").await;
    assert!(
        sid.starts_with("SG") && secret.len() >= 43,
        "{sid} {secret}"
    );
    assert!(c.find(Locator::Css("[data-copy=new-secret]")).await.is_ok());
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 403);

    // The edit page never shows it again.
    click_and_wait(&c, "#done", false).await;
    let page = c.source().await.unwrap();
    assert!(page.contains(&sid) && !page.contains(&secret));
    c.goto(&console).await.unwrap();
    assert!(!c.source().await.unwrap().contains(&secret));
    c.goto(&format!("{console}tokens/{sid}")).await.unwrap();

    // Toggle reports on and Update (with its confirmation): the proxy's answer flips.
    click(&c, ".scope-row[data-api=reports] label.switch").await;
    click_and_wait(&c, "#update", true).await;
    assert!(text_of(&c, ".banner.ok").await.contains("Updated"));
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 200);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);
    screenshot(&c, "edit.png").await;

    // Uncheck campaigns:GET only (the method checkbox): campaigns flips to 403.
    click(&c, "input[name=scope][value='campaigns:GET']").await;
    click_and_wait(&c, "#update", true).await;
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 403);
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 200);

    // Clear All.
    click_and_wait(&c, "#clear-all", true).await;
    assert!(text_of(&c, ".banner.ok")
        .await
        .contains("Cleared all scopes"));
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 403);
    let checked = c
        .find_all(Locator::Css("input[name=scope]:checked"))
        .await
        .unwrap();
    assert!(checked.is_empty());

    // Grant campaigns again, plus `public`, which the integration never uses: "Narrow to
    // used" takes `public` away again.
    click(&c, ".scope-row[data-api=campaigns] label.switch").await;
    click(&c, ".scope-row[data-api=public] label.switch").await;
    click_and_wait(&c, "#update", true).await;
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);
    c.refresh().await.unwrap();
    assert!(text_of(&c, "#unused").await.contains("public:GET"));
    click_and_wait(&c, "#narrow", true).await;
    assert!(text_of(&c, ".banner.ok").await.contains("Narrowed"));
    assert_eq!(proxy_get(&h, &sid, &secret, "/public/x").await, 403);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);

    // Reset: the old secret is refused, the new one accepted.
    click_and_wait(&c, "#reset", true).await;
    let new_secret = text_of(&c, "#new-secret").await;
    assert_ne!(new_secret, secret);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 401);
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 200);
    click_and_wait(&c, "#done", false).await;
    assert!(!c.source().await.unwrap().contains(&new_secret));

    // Disable, then Enable.
    click_and_wait(&c, "#disable", true).await;
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 401);
    click_and_wait(&c, "#enable", false).await;
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 200);

    // A form post without the CSRF token (built by a script on the page) is refused.
    c.execute(
        "var f = document.createElement('form'); f.method = 'post'; \
         f.action = '/console/tokens/' + arguments[0] + '/disable'; \
         document.body.appendChild(f); f.submit();",
        vec![json!(sid)],
    )
    .await
    .unwrap();
    c.wait()
        .for_element(Locator::XPath("//*[contains(text(), 'CSRF')]"))
        .await
        .unwrap();
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 200);

    // Delete, with its confirmation: gone from the cards, refused by the proxy.
    c.goto(&format!("{console}tokens/{sid}")).await.unwrap();
    click_and_wait(&c, "#delete", true).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/console/");
    assert!(text_of(&c, ".banner.ok").await.contains("Deleted"));
    assert!(c
        .find(Locator::Css(&format!("article.card[data-sid={sid}]")))
        .await
        .is_err());
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 401);

    // Who did what is in the admin log, as the console user.
    let log = std::fs::read_to_string(h.dir.path("state/admin-log.jsonl")).unwrap();
    assert!(log
        .lines()
        .all(|l| l.contains("\"who\":\"ops\"") && l.contains("\"via\":\"console\"")));
    assert!(!log.contains(&secret) && !log.contains(&new_secret));

    c.close().await.unwrap();
}
