//! The chat's web page in a real browser (Debian's headless Chromium driven
//! over WebDriver): a browser user and a terminal user talk both ways, the
//! page shows rooms, members and history, and it reconnects by itself after
//! the server restarts. Saves a screenshot of the page.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::chat::{ChatServer, Client, WAIT};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use tokio::runtime::Runtime;

/// `chromedriver` on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (Debian chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
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

async fn open_browser(driver: &Driver, profile: &std::path::Path) -> Browser {
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1000,640",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session")
}

/// Waits until some element matching `css` has text containing `needle`.
async fn wait_text(browser: &Browser, css: &str, needle: &str) {
    let deadline = Instant::now() + WAIT;
    let mut last = Vec::new();
    loop {
        last.clear();
        for element in browser.find_all(Locator::Css(css)).await.unwrap() {
            if let Ok(text) = element.text().await {
                last.push(text);
            }
        }
        if last.iter().any(|text| text.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} with {needle:?}; last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn say(browser: &Browser, text: &str) {
    let input = browser.find(Locator::Id("input")).await.unwrap();
    input.send_keys(text).await.unwrap();
    browser
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[test]
fn a_browser_user_and_a_terminal_user_talk_and_the_page_reconnects() {
    let runtime = Runtime::new().unwrap();
    let server = ChatServer::start(&["--bot", "--web", "127.0.0.1:0"]);
    let web = server.web.clone().unwrap();
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = runtime.block_on(open_browser(&driver, profile.path()));

    let mut terminal = Client::join(&server.addr, "termy");
    terminal.send("hello before the browser came");
    runtime.block_on(async {
        browser.goto(&web).await.unwrap();
        let nick = browser.find(Locator::Id("nick-input")).await.unwrap();
        nick.send_keys("webby").await.unwrap();
        browser
            .find(Locator::Id("join-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&browser, "#status", "connected").await;
        let login = browser.find(Locator::Id("login")).await.unwrap();
        assert!(!login.is_displayed().await.unwrap(), "the login form hides");
        // History, members and rooms as the page shows them.
        wait_text(&browser, "#log li", "<termy> hello before the browser came").await;
        wait_text(&browser, "#members li", "webby (you)").await;
        wait_text(&browser, "#members li", "termy").await;
        wait_text(&browser, "#members li", "bot").await;
        wait_text(&browser, "#rooms li", "#lobby (3)").await;
    });
    terminal.expect("*** webby joined #lobby");

    terminal.send("hi webby, this is the terminal");
    runtime.block_on(async {
        wait_text(
            &browser,
            "#log li",
            "<termy> hi webby, this is the terminal",
        )
        .await;
        say(&browser, "hello termy, from the browser").await;
        wait_text(&browser, "#log li", "<webby> hello termy, from the browser").await;
    });
    assert_eq!(
        terminal.expect("from the browser"),
        "<webby> hello termy, from the browser"
    );
    runtime.block_on(async {
        say(&browser, "/me waves at the terminal").await;
        wait_text(&browser, "#log li", "<bot> Welcome, webby!").await;
    });
    assert_eq!(terminal.expect("waves"), "* webby waves at the terminal");
    save_screenshot(&runtime.block_on(browser.screenshot()).unwrap());

    // Restart the server on the same addresses: the page notices, retries
    // and rejoins under the same nickname.
    let (chat_addr, web_addr) = (server.addr.clone(), web_address(&web));
    assert!(server.stop().success());
    terminal.expect_closed();
    runtime.block_on(wait_text(&browser, "#status", "reconnecting"));
    let server = ChatServer::start_at(&chat_addr, &["--web", &web_addr]);
    runtime.block_on(async {
        wait_text(&browser, "#status", "connected").await;
        wait_text(&browser, "#members li", "webby (you)").await;
    });
    let mut terminal = Client::join(&server.addr, "termy");
    terminal.send("/who");
    terminal.expect("*** In #lobby (2): termy, webby");
    terminal.send("welcome back");
    runtime.block_on(wait_text(&browser, "#log li", "<termy> welcome back"));

    runtime.block_on(browser.close()).unwrap();
    assert!(server.stop().success());
}

/// `http://127.0.0.1:PORT/` → `127.0.0.1:PORT`.
fn web_address(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Into the test's temporary directory; with `UPDATE_SCREENSHOTS=1` also
/// over the copy the README shows.
fn save_screenshot(png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chat-browser.png");
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/chat-browser.png");
        std::fs::write(docs, png).unwrap();
    }
}
