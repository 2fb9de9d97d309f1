//! The public page in a real browser: headless Chromium driven over WebDriver (the system
//! `chromedriver`, started here on a free port and killed when the test ends). A person picks
//! a prefecture and a municipality, sees the seeded sites with the right symbols and words,
//! opens one's details; the site changes its status through the API; after a reload the page
//! shows the new symbol. Also checked in the page itself: a phone-sized window needs no
//! sideways scrolling, every control has a label, the Enter key submits, and text contrast
//! meets WCAG AA. A screenshot is saved to `artifacts/` at the workspace root.
//!
//! Chromium missing is a failure, not a skip: `scripts/test` installs Debian's `chromium` and
//! `chromium-driver`; set `CHROMIUM` / `CHROMEDRIVER` to use other binaries.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tests::{TestApp, token};

use crate::availability::SET;
use crate::public::{CHIYODA, seed};

const DEADLINE: Duration = Duration::from_secs(30);

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: the browser test needs Chromium and ChromeDriver. Install them with \
         `apt-get update && apt-get install -y chromium chromium-driver` (scripts/test does this), \
         or point {var} at the binary.",
        path.display()
    );
    path
}

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let exe = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    until("chromedriver to answer", || {
        let http = http.clone();
        let url = format!("{}/status", driver.url);
        async move {
            let resp = http.get(url).send().await.ok()?;
            let v: Value = resp.json().await.ok()?;
            (v["value"]["ready"] == true).then_some(())
        }
    })
    .await;
    driver
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--lang=ja", "--window-size=390,844",
                format!("--user-data-dir={}", profile.display()),
            ],
            // A phone-sized screen (headless windows have a minimum width; emulation has not).
            "mobileEmulation": { "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true } }
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!("an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Polls `f` until it gives a value or the deadline passes.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cards on the page: (site code, status, symbol, words).
async fn cards(c: &Client) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let Ok(items) = c.find_all(Locator::Css("li.site")).await else {
        return out;
    };
    for li in items {
        let code = li.attr("data-code").await.ok().flatten().unwrap_or_default();
        let status = li.attr("data-status").await.ok().flatten().unwrap_or_default();
        let symbol = match li.find(Locator::Css(".status .symbol")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let label = match li.find(Locator::Css(".status .label")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push((code, status, symbol, label));
    }
    out
}

async fn wait_cards(c: &Client, n: usize) -> Vec<(String, String, String, String)> {
    until(&format!("{n} results"), || async {
        let got = cards(c).await;
        (got.len() == n).then_some(got)
    })
    .await
}

/// WCAG relative-luminance contrast of each text element against its painted background.
const CONTRAST: &str = r#"
function lum(c) {
  const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const [r, g, b, a] = m[1].split(',').map(Number);
  if (a === 0) return null;
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}
function bg(e) {
  for (; e; e = e.parentElement) { const l = lum(getComputedStyle(e).backgroundColor); if (l !== null) return l; }
  return 1;
}
const bad = [];
for (const e of document.querySelectorAll('h1, h2, h3, p, label, legend, dt, dd, a, button, span, option, select, input')) {
  if (!e.offsetParent && e.tagName !== 'OPTION') continue;
  const fg = lum(getComputedStyle(e).color); if (fg === null) continue;
  const b = bg(e);
  const ratio = (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
  if (ratio < 4.5) bad.push(e.tagName + '.' + e.className + ' ' + ratio.toFixed(2));
}
return bad;
"#;

#[tokio::test]
async fn a_person_finds_sites_and_sees_a_changed_status_after_reload() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;

    c.goto(&app.url("/")).await.expect("open the page");
    until("the page to load its lists", || async {
        let ready = c.find(Locator::Css("body[data-ready='true']")).await.is_ok();
        let tokyo = c.find(Locator::Css("#prefecture option[value='13']")).await.is_ok();
        (ready && tokyo).then_some(())
    })
    .await;

    // Choose 東京都, then 千代田区 (the municipality list loads after the prefecture).
    c.find(Locator::Css("#prefecture"))
        .await
        .expect("prefecture")
        .select_by_value("13")
        .await
        .expect("choose Tokyo");
    until("Tokyo's municipalities", || async {
        c.find(Locator::Css(&format!(
            "#municipality:enabled option[value='{CHIYODA}']"
        )))
        .await
        .ok()
        .map(|_| ())
    })
    .await;
    c.find(Locator::Css("#municipality"))
        .await
        .expect("municipality")
        .select_by_value(CHIYODA)
        .await
        .expect("choose Chiyoda");
    c.find(Locator::Css("#submit"))
        .await
        .expect("button")
        .click()
        .await
        .expect("search");

    let want = |sakura: (&str, &str, &str)| {
        vec![
            (
                s.sakura.clone(),
                sakura.0.to_owned(),
                sakura.1.to_owned(),
                sakura.2.to_owned(),
            ),
            (s.midori.clone(), "FEW".into(), "△".into(), "残りわずか".into()),
            (s.hikari.clone(), "FULL".into(), "×".into(), "予約不可".into()),
            (s.chuo.clone(), "UNKNOWN".into(), "－".into(), "情報なし".into()),
            (s.venue.clone(), "OPEN".into(), "○".into(), "予約可能".into()),
        ]
    };
    assert_eq!(wait_cards(&c, 5).await, want(("OPEN", "○", "予約可能")));
    let summary = c
        .find(Locator::Css("#summary"))
        .await
        .expect("summary")
        .text()
        .await
        .expect("text");
    assert!(summary.contains("5件"), "{summary}");
    let url = c.current_url().await.expect("url");
    assert!(
        url.query()
            .is_some_and(|q| q.contains("pref=13") && q.contains(&format!("city={CHIYODA}"))),
        "the search is kept in the address: {url}"
    );

    // Open a site's details: how to book.
    let card = c
        .find(Locator::Css(&format!("li.site[data-code='{}']", s.sakura)))
        .await
        .expect("card");
    let toggle = card.find(Locator::Css("button.toggle")).await.expect("toggle");
    toggle.click().await.expect("open details");
    assert_eq!(
        toggle.attr("aria-expanded").await.expect("attr").as_deref(),
        Some("true")
    );
    let details = card.find(Locator::Css(".details")).await.expect("details");
    assert!(details.is_displayed().await.expect("displayed"));
    let text = details.text().await.expect("text");
    for part in ["03-1111-2222", "https://yoyaku.example.jp/sakura", "駐車場あり"] {
        assert!(text.contains(part), "{part} in {text}");
    }

    // On a phone-sized screen: no sideways scrolling; every control labelled; AA contrast.
    let layout = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth, \
             [...document.querySelectorAll('input, select')].filter(e => e.labels.length === 0).map(e => e.id)];",
            vec![],
        )
        .await
        .expect("layout");
    let (scroll, width) = (layout[0].as_u64().expect("n"), layout[1].as_u64().expect("n"));
    assert!(width <= 420, "a phone-sized window, got {width}px");
    assert!(
        scroll <= width,
        "no horizontal scrolling: content {scroll}px in {width}px"
    );
    assert_eq!(layout[2], json!([]), "controls without a label");
    let low = c.execute(CONTRAST, vec![]).await.expect("contrast");
    assert_eq!(low, json!([]), "text below 4.5:1 contrast");

    // The site changes its status through the API; after a reload the page shows it.
    app.ok(
        &token("SITE", Some(&s.sakura)),
        SET,
        json!({ "code": s.sakura, "input": { "status": "FULL" } }),
    )
    .await;
    c.refresh().await.expect("reload");
    let after = until("the new status after reload", || async {
        let got = cards(&c).await;
        (got.len() == 5 && got[0].1 == "FULL").then_some(got)
    })
    .await;
    assert_eq!(after, want(("FULL", "×", "予約不可")));

    // Keyboard: type into the search box and press Enter; "available only" narrows the list.
    c.find(Locator::Css("#available"))
        .await
        .expect("checkbox")
        .click()
        .await
        .expect("tick");
    let text_box = c.find(Locator::Css("#text")).await.expect("text box");
    text_box.send_keys(&Key::Enter.to_string()).await.expect("press Enter");
    let available = until("the available-only list", || async {
        let got = cards(&c).await;
        (got.len() == 2).then_some(got)
    })
    .await;
    assert_eq!(
        available.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
        vec![s.midori.clone(), s.venue.clone()]
    );

    // Back to the full list for the screenshot.
    c.find(Locator::Css("#available"))
        .await
        .expect("checkbox")
        .click()
        .await
        .expect("untick");
    c.find(Locator::Css("#submit"))
        .await
        .expect("button")
        .click()
        .await
        .expect("search");
    wait_cards(&c, 5).await;
    let png = c.screenshot().await.expect("screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let mode = if app.db.is_postgres() { "postgres" } else { "sqlite" };
    let file = dir.join(format!("public-page-{mode}.png"));
    std::fs::write(&file, &png).expect("write screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    c.close().await.expect("close the browser");
}
