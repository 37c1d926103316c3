//! Driving real headless Chromium through chromedriver: one browser test at
//! a time (the CI machine has two cores), a fresh profile per test, and a
//! screenshot of each step under `target/screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// Browser tests run one at a time.
static ONE_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn chromedriver_path() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(CHROMEDRIVER))
                .find(|p| p.is_file())
        })
        .unwrap_or_default()
        .or_else(|| {
            let p = PathBuf::from("/usr/bin/chromedriver");
            p.is_file().then_some(p)
        });
    match found {
        Some(path) if std::path::Path::new(CHROMIUM).is_file() => path,
        _ => panic!(
            "the browser tests need Chromium and chromedriver (Debian packages `chromium` and \
             `chromium-driver`): run `scripts/test`, which installs them"
        ),
    }
}

/// A running chromedriver, a browser session on it, and the lock that keeps
/// other browser tests waiting. Everything is torn down on drop.
pub struct Browser {
    pub client: Client,
    test: &'static str,
    step: u32,
    driver: DriverProcess,
    _profile: TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session.
    pub async fn start(test: &'static str) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        // Last run's pictures of this test go, so the folder shows one run.
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        if let Ok(entries) = std::fs::read_dir(&shots) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{test}-"))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let path = chromedriver_path();
        let port = free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (run `scripts/test` to install it)");
        let driver = DriverProcess(child);
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(res) = reqwest::get(format!("{url}/status")).await
                && res.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("ld-eaas-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            }),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            test,
            step: 0,
            driver,
            _profile: TempDir(profile),
            _turn: turn,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// The visible text of the page, or `None` while it is being replaced.
    async fn try_text(&self) -> Option<String> {
        let body = self.client.find(Locator::Css("body")).await.ok()?;
        body.text().await.ok()
    }

    /// The visible text of the page (waiting out a navigation in progress).
    pub async fn text(&self) -> String {
        for _ in 0..50 {
            if let Some(text) = self.try_text().await {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never settled");
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// Waits until the page text contains `needle`, reloading if asked.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.try_text().await.unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < timeout,
                "the page never showed {needle:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves `target/screenshots/<test>-<nn>-<step>.png`.
    pub async fn screenshot(&mut self, step: &str) -> PathBuf {
        self.step += 1;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{:02}-{step}.png", self.test, self.step));
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// A full-page screenshot: grows the window to the page's height first.
    pub async fn screenshot_full(&mut self, step: &str) -> PathBuf {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(900)
            .clamp(900, 4000);
        let _ = self
            .client
            .set_window_size(1280, u32::try_from(height).unwrap_or(900))
            .await;
        let _ = self.client.execute("window.scrollTo(0, 0);", vec![]).await;
        let path = self.screenshot(step).await;
        let _ = self.client.set_window_size(1280, 900).await;
        path
    }

    pub async fn close(self) {
        let Self { client, driver, .. } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// axe-core's engine, from the npm package the CI installs (`npm ci`).
static AXE: LazyLock<String> = LazyLock::new(|| {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the accessibility checks need axe-core: run `npm ci` in the repository root ({}: {e})",
            path.display()
        )
    })
});

impl Browser {
    /// Runs axe-core on the page as it is and fails on any violation. The
    /// engine is injected through WebDriver, never served by the app (its
    /// CSP stays strict).
    pub async fn assert_axe_clean(&mut self, what: &str) {
        let loaded = self
            .client
            .execute(
                &format!("{}\n;return typeof window.axe === 'object';", *AXE),
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("injecting axe-core into {what}: {e}"));
        assert_eq!(loaded, json!(true), "axe-core did not load into {what}");
        let violations = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)
                   }))))
                   .catch(e => done([{ id: 'axe-error', help: String(e) }]));",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("running axe-core on {what}: {e}"));
        let found = violations.as_array().cloned().unwrap_or_default();
        if !found.is_empty() {
            let shot = self
                .screenshot(&format!("axe-{}", what.replace(['/', ' '], "-")))
                .await;
            panic!(
                "axe found {} violation(s) on {what} (screenshot {}):\n{}",
                found.len(),
                shot.display(),
                serde_json::to_string_pretty(&found).unwrap()
            );
        }
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Sets the window to a phone's width (390 px) or back to the desktop.
    pub async fn phone(&self, on: bool) {
        let (w, h) = if on { (390, 844) } else { (1280, 900) };
        self.client.set_window_size(w, h).await.unwrap();
    }
}
