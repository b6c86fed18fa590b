//! Headless-Chromium harness for end-to-end tests through the web pages.
//!
//! [`Browser::start`] runs `/usr/bin/chromedriver` on a free loopback port;
//! [`Browser::new_page`] opens a WebDriver session, which is one headless
//! Chromium process with a fresh profile, the flags in [`BASE_FLAGS`] and a
//! fake camera and microphone. A [`Page`] opens
//! URLs, runs JavaScript that returns JSON, and waits for a JS predicate.
//!
//! Browser tests in one test binary run one at a time ([`Browser`] holds a
//! process-wide lock): each Chromium is heavy on a 2-core machine.
//!
//! Never fetches a browser: `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! come from Debian's `chromium` and `chromium-driver` packages (override
//! with `CLASSRELAY_CHROMIUM` / `CLASSRELAY_CHROMEDRIVER`). Without them a
//! test skips ([`super::skip::because`]), unless `CI` is set, where a missing
//! browser is a failure.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Default deadline for [`Page::wait_until`] callers.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// How often [`Page::wait_until`] re-evaluates its predicate.
const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Chromium flags that work as root on a closed network: no sandbox (root), no GPU, no
/// QUIC, nothing fetched or synced in the background.
const BASE_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Fake media without prompts, loopback ICE candidates, autoplay with sound.
const MEDIA_FLAGS: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
];

/// Serialises browser tests within one test binary.
static BROWSER_LOCK: LazyLock<Arc<tokio::sync::Mutex<()>>> =
    LazyLock::new(|| Arc::new(tokio::sync::Mutex::new(())));

fn chromedriver_path() -> PathBuf {
    std::env::var_os("CLASSRELAY_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CLASSRELAY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A running chromedriver; kills it (and any Chromium it started) on drop.
pub struct Browser {
    driver: Child,
    url: String,
    /// Parent of every session's `--user-data-dir`; also how leftover
    /// Chromium processes are recognised on drop.
    profiles: tempfile::TempDir,
    _serial: tokio::sync::OwnedMutexGuard<()>,
}

impl Browser {
    /// Starts chromedriver, or returns `None` (skipped, see
    /// [`super::skip::because`]) when it is not installed and `CI` is unset.
    /// Panics when it is missing under CI.
    pub async fn start_or_skip() -> Option<Browser> {
        let driver = chromedriver_path();
        if !driver.exists() || !chromium_path().exists() {
            super::skip::because(format!(
                "{} or {} not installed (apt-get install -y chromium chromium-driver)",
                driver.display(),
                chromium_path().display()
            ));
            return None;
        }
        Some(Self::start().await.expect("start chromedriver"))
    }

    /// Starts chromedriver on a free loopback port.
    pub async fn start() -> Result<Browser> {
        let serial = BROWSER_LOCK.clone().lock_owned().await;
        let profiles = tempfile::Builder::new()
            .prefix("classrelay-chromium-")
            .tempdir()
            .context("temp dir for Chromium profiles")?;
        let log_path = profiles.path().join("chromedriver.log");
        let mut driver = Command::new(chromedriver_path())
            .arg("--port=0")
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {}", chromedriver_path().display()))?;
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        // chromedriver prints "ChromeDriver was started successfully on port N."
        // once it listens; read that line on a blocking thread.
        let port = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || -> Result<u16> {
                let mut lines = BufReader::new(stdout).lines();
                for line in lines.by_ref() {
                    let line = line?;
                    if let Some(rest) = line.split("started successfully on port ").nth(1) {
                        let port = rest.trim_end_matches('.').trim().parse::<u16>()?;
                        // Keep draining stdout so chromedriver never blocks on it.
                        std::thread::spawn(move || lines.for_each(drop));
                        return Ok(port);
                    }
                }
                bail!("chromedriver exited before it was listening")
            }),
        )
        .await;
        let port = match port {
            Ok(Ok(Ok(port))) => port,
            other => {
                let _ = driver.kill();
                let _ = driver.wait();
                bail!("chromedriver did not start: {other:?}");
            }
        };
        Ok(Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            profiles,
            _serial: serial,
        })
    }

    /// Opens a new headless Chromium (one WebDriver session) with a fresh
    /// profile, fake camera and microphone.
    pub async fn new_page(&self) -> Result<Page> {
        self.new_page_with_flags(&[]).await
    }

    /// Like [`Browser::new_page`], with extra Chromium command-line flags.
    pub async fn new_page_with_flags(&self, extra: &[&str]) -> Result<Page> {
        let profile = tempfile::Builder::new()
            .prefix("profile-")
            .tempdir_in(self.profiles.path())
            .context("profile dir")?;
        let mut args: Vec<String> = BASE_FLAGS
            .iter()
            .chain(MEDIA_FLAGS)
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_path(),
                "args": args,
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("json! object literal is an object")
        };
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&self.url)
        .await
        .with_context(|| {
            format!(
                "new WebDriver session (chromedriver log: {})",
                self.profiles.path().join("chromedriver.log").display()
            )
        })?;
        Ok(Page {
            client,
            _profile: profile,
        })
    }

    /// The chromedriver log, for failure messages.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.profiles.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Sessions not closed explicitly leave their Chromium behind once
        // chromedriver is gone: end exactly those, found by our profile path.
        for pid in pids_with_arg(self.profiles.path()) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Process ids whose command line mentions `needle` (our temp profile dir).
fn pids_with_arg(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// One headless Chromium window (a WebDriver session).
pub struct Page {
    client: fantoccini::Client,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Navigates to `url` and waits for the load event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("goto {url}"))
    }

    /// Runs a JavaScript function body and returns its JSON result. The body
    /// must `return` a value; a returned Promise is awaited (WebDriver
    /// semantics), so `return window.classrelay.stats()` works.
    pub async fn eval(&self, body: &str) -> Result<Value> {
        self.client
            .execute(body, Vec::new())
            .await
            .map_err(|e| anyhow!("JS failed: {e}\n--- script ---\n{body}"))
    }

    /// Like [`Page::eval`], with JSON arguments available as `arguments[i]`.
    pub async fn eval_with(&self, body: &str, args: Vec<Value>) -> Result<Value> {
        self.client
            .execute(body, args)
            .await
            .map_err(|e| anyhow!("JS failed: {e}\n--- script ---\n{body}"))
    }

    /// Opens `base`'s login page and logs in as `user` through the API from there, so the
    /// session cookie is the browser's own.
    pub async fn log_in(&self, base: &str, user: &str, password: &str) -> Result<()> {
        self.goto(&format!("{base}/login")).await?;
        let status = self
            .eval_with(
                "return fetch('/api/login', { method: 'POST', headers: { 'Content-Type': \
                 'application/json' }, body: JSON.stringify({ username: arguments[0], \
                 password: arguments[1] }), credentials: 'same-origin' }).then((r) => r.status);",
                vec![serde_json::json!(user), serde_json::json!(password)],
            )
            .await?;
        if status != 200 {
            bail!("login as {user}: HTTP {status}");
        }
        Ok(())
    }

    /// Signs in through the `/login` page of the server at `base` as `user` with `password`,
    /// and waits until the page has left `/login`.
    pub async fn login(&self, base: &str, user: &str, password: &str) -> Result<()> {
        self.goto(&format!("{base}/login")).await?;
        self.eval_with(
            "document.getElementById('username').value = arguments[0];
             document.getElementById('password').value = arguments[1];
             document.getElementById('submit').click(); return true;",
            vec![user.into(), password.into()],
        )
        .await?;
        self.wait_until(
            "location.pathname !== '/login'",
            DEFAULT_DEADLINE,
            "document.body.innerText",
        )
        .await
        .map(|_| ())
    }

    /// Evaluates a JS *expression* (may be a Promise) and returns its JSON value.
    pub async fn eval_expr(&self, expr: &str) -> Result<Value> {
        self.eval(&format!("return ({expr});")).await
    }

    /// Polls the JS expression `predicate` until it is truthy and returns
    /// that value; after `deadline`, fails with `describe` (a JS expression
    /// evaluated for the error message, e.g. a stats dump).
    pub async fn wait_until(
        &self,
        predicate: &str,
        deadline: Duration,
        describe: &str,
    ) -> Result<Value> {
        let end = Instant::now() + deadline;
        loop {
            let v = self.eval_expr(predicate).await?;
            if truthy(&v) {
                return Ok(v);
            }
            if Instant::now() >= end {
                let info = self
                    .eval_expr(describe)
                    .await
                    .unwrap_or_else(|e| Value::String(e.to_string()));
                bail!(
                    "timed out after {deadline:?} waiting for `{predicate}`; {describe} = {}",
                    serde_json::to_string_pretty(&info).unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls `window.classrelay.stats()` until `pred` accepts it, and returns
    /// that summary; on timeout the error holds the last summary and the
    /// page's log.
    pub async fn wait_for_stats(
        &self,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let end = Instant::now() + deadline;
        loop {
            let stats = self.stats().await?;
            if pred(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= end {
                bail!(
                    "timed out after {deadline:?} waiting for {what}; last stats: {}\npage log:\n{}",
                    serde_json::to_string_pretty(&stats).unwrap_or_default(),
                    self.page_log().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `window.classrelay.stats()` (see web/whip.js for its shape).
    pub async fn stats(&self) -> Result<Value> {
        self.eval("return window.classrelay ? window.classrelay.stats() : null;")
            .await
    }

    /// `window.classrelay.state` ("connected", "failed", ...), or "" if absent.
    pub async fn state(&self) -> Result<String> {
        let v = self
            .eval("return window.classrelay ? window.classrelay.state : '';")
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Waits for `window.classrelay.state == state`; fails early on "failed".
    pub async fn wait_for_state(&self, state: &str, deadline: Duration) -> Result<()> {
        let pred = format!(
            "window.classrelay && (window.classrelay.state === {s} || \
             (window.classrelay.state === 'failed' && {s} !== 'failed' && 'failed'))",
            s = serde_json::to_string(state)?
        );
        let v = self
            .wait_until(
                &pred,
                deadline,
                "window.classrelay && window.classrelay.error",
            )
            .await?;
        if v == "failed" {
            bail!(
                "page failed instead of reaching {state}: error {}\npage log:\n{}",
                self.eval_expr("window.classrelay.error").await?,
                self.page_log().await
            );
        }
        Ok(())
    }

    /// The page's `window.classrelay.log` lines, for failure messages.
    pub async fn page_log(&self) -> String {
        match self
            .eval("return window.classrelay ? window.classrelay.log.join('\\n') : '';")
            .await
        {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// With `CLASSRELAY_SCREENSHOTS=<dir>` set (`docs/screenshots/make.sh` sets it), saves a
    /// screenshot of the page at 1920×1080 (a classroom PC's screen) as `<dir>/<name>.png`
    /// for the README; otherwise does nothing.
    pub async fn screenshot_for_docs(&self, name: &str) -> Result<()> {
        match std::env::var_os("CLASSRELAY_SCREENSHOTS") {
            Some(dir) => {
                self.client
                    .set_window_size(1920, 1080)
                    .await
                    .context("window size")?;
                self.screenshot(&Path::new(&dir).join(format!("{name}.png")))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Saves a PNG screenshot of the page (to look at what a person would see).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.client.screenshot().await.context("screenshot")?;
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }

    /// The underlying fantoccini client, for anything not wrapped here.
    pub fn client(&self) -> &fantoccini::Client {
        &self.client
    }

    /// Ends the WebDriver session, which closes this Chromium.
    pub async fn close(self) -> Result<()> {
        self.client.close().await.context("close WebDriver session")
    }
}

/// Logs `user` in on /login (password `password-123`, as `super::school::fixture` makes
/// them) and opens the teacher console of lesson `id` with a drawn courseware screen and a
/// 640×360 camera; returns once the page is /teach (not waiting for any media).
pub async fn open_console(browser: &Browser, base: &str, user: &str, id: i64) -> Result<Page> {
    open_console_sized(browser, base, user, id, 640, 360).await
}

/// [`open_console`] with a `width`×`height` camera (960×540 and up: three simulcast layers).
pub async fn open_console_sized(
    browser: &Browser,
    base: &str,
    user: &str,
    id: i64,
    width: u32,
    height: u32,
) -> Result<Page> {
    let page = browser.new_page().await?;
    page.goto(&format!(
        "{base}/login?next=/teach%3Flesson%3D{id}%26screen%3D1%26width%3D{width}%26height%3D{height}"
    ))
    .await?;
    page.eval_with(
        "document.getElementById('username').value = arguments[0];
         document.getElementById('password').value = 'password-123';
         document.getElementById('submit').click(); return true;",
        vec![json!(user)],
    )
    .await?;
    page.wait_until(
        "location.pathname === '/teach'",
        Duration::from_secs(60),
        "document.body.innerText",
    )
    .await?;
    Ok(page)
}

/// The hub teacher (`wang`) on the console of lesson `id`, publishing.
pub async fn teacher_console(browser: &Browser, app: &super::school::App, id: i64) -> Result<Page> {
    let page = open_console(browser, &app.base, "wang", id).await?;
    page.wait_for_state("connected", Duration::from_secs(60))
        .await?;
    Ok(page)
}

/// JavaScript truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Reads a number at a JSON pointer (e.g. `/inboundVideo/0/framesDecoded`), 0 if absent.
pub fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0)
}
