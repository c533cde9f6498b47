//! Headless Chromium for page tests: load a URL, wait for it to settle, and hand back its DOM,
//! the console errors and uncaught exceptions it produced, and a screenshot.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: it
//! reads commands on descriptor 3 and writes answers and events on descriptor 4, each message
//! JSON ended by a NUL byte), because its log output does not tell `console.error` from
//! `console.log`. `find` looks for the Debian package's binary; tests skip when it is missing,
//! unless `RINGMETER_REQUIRE_INTEROP=1`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the page runs after its load event before it is read: long enough for a few
/// polls of a page that updates every window (tests use short windows).
const SETTLE: Duration = Duration::from_millis(3000);
/// The longest wait for one answer of the browser.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a loaded page showed.
pub struct Page {
    /// `document.documentElement.outerHTML` after the page settled.
    pub dom: String,
    /// Console messages of level error, uncaught exceptions and browser log entries of level
    /// error (failed loads, blocked content), in order.
    pub console_errors: Vec<String>,
}

/// The Chromium binary (`chromium` or `chromium-browser` on `PATH`, or `/usr/bin/chromium`),
/// or `None`: the caller skips its test, or fails it under `RINGMETER_REQUIRE_INTEROP=1`.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find_map(|dir| {
            ["chromium", "chromium-browser"]
                .iter()
                .map(|name| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    let found = on_path.or_else(|| {
        let p = PathBuf::from("/usr/bin/chromium");
        p.is_file().then_some(p)
    });
    if found.is_none() && std::env::var("RINGMETER_REQUIRE_INTEROP").is_ok_and(|v| v == "1") {
        panic!("RINGMETER_REQUIRE_INTEROP=1 but no chromium on PATH (Debian package `chromium`)");
    }
    found
}

/// Loads `url` in headless `chromium` (1280×1000), lets it run for a few seconds after its
/// load event, writes a full-page PNG screenshot to `screenshot` (creating its folder) and
/// returns the DOM and the console errors.
///
/// # Panics
/// When the browser cannot be started, stops answering, or the page does not load.
pub fn load(chromium: &Path, url: &str, screenshot: &Path) -> Page {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let profile = std::env::temp_dir().join(format!(
        "ringmeter-chromium-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut browser = Browser::start(chromium, &profile);
    let page = browser.load(url, screenshot);
    browser.close();
    let _ = std::fs::remove_dir_all(&profile);
    page
}

/// A running browser and its DevTools pipe.
struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    messages: Receiver<Value>,
    next_id: u64,
    /// Events seen while waiting for answers, in order.
    events: Vec<Value>,
}

impl Browser {
    fn start(chromium: &Path, profile: &Path) -> Browser {
        let (to_browser_read, to_browser_write) = std::io::pipe().expect("pipe");
        let (from_browser_read, from_browser_write) = std::io::pipe().expect("pipe");
        let read_fd: OwnedFd = to_browser_read.into();
        let write_fd: OwnedFd = from_browser_write.into();
        let (r, w) = (read_fd.as_raw_fd(), write_fd.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox", // runs as root in CI
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let wire = move || -> std::io::Result<()> {
            // Copies at 10 or above first, so neither end already sits at 3 or 4 (where
            // `dup2` would do nothing and leave close-on-exec set) or is overwritten by the
            // other's move.
            // SAFETY: `fcntl(F_DUPFD)` on a descriptor this process owns; async-signal-safe.
            let r_high = unsafe { libc::fcntl(r, libc::F_DUPFD, 10) };
            // SAFETY: as above.
            let w_high = unsafe { libc::fcntl(w, libc::F_DUPFD, 10) };
            if r_high < 0 || w_high < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // `dup2` clears close-on-exec on the new descriptor, so Chromium inherits it.
            // SAFETY: `dup2` of an open descriptor onto 3; async-signal-safe.
            if unsafe { libc::dup2(r_high, 3) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: as above, onto 4.
            if unsafe { libc::dup2(w_high, 4) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure runs in the child between fork and exec; it calls only `fcntl`
        // and `dup2`, which are async-signal-safe, and allocates nothing and takes no lock.
        unsafe { command.pre_exec(wire) };
        let child = command.spawn().expect("start chromium");
        // The child holds its ends now; ours are closed so EOF is seen when it exits.
        drop(read_fd);
        drop(write_fd);
        let (tx, messages) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(from_browser_read);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
                    continue;
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        Browser {
            child,
            commands: to_browser_write,
            messages,
            next_id: 1,
            events: Vec::new(),
        }
    }

    /// Sends a command (to the page's session when `session` is given) and waits for its
    /// answer's `result`, keeping the events that arrive meanwhile.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium closed its pipe before {method}: {e}"));
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer from chromium to {method}"));
            if m.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(e) = m.get("error") {
                    panic!("chromium refused {method}: {e}");
                }
                return m.get("result").cloned().unwrap_or(Value::Null);
            }
            self.events.push(m);
        }
    }

    /// Collects events for `d`, or until an event named `until` arrives.
    fn wait_events(&mut self, d: Duration, until: Option<&str>) -> bool {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.messages.recv_timeout(left) {
                Ok(m) => {
                    let hit = until.is_some() && m.get("method").and_then(Value::as_str) == until;
                    self.events.push(m);
                    if hit {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("chromium exited"),
            }
        }
        false
    }

    fn load(&mut self, url: &str, screenshot: &Path) -> Page {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        let s = Some(session.as_str());
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(s, domain, json!({}));
        }
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
        );
        let nav = self.call(s, "Page.navigate", json!({ "url": url }));
        if let Some(e) = nav.get("errorText") {
            panic!("chromium could not load {url}: {e}");
        }
        assert!(
            self.wait_events(ANSWER_TIMEOUT, Some("Page.loadEventFired")),
            "{url} did not finish loading"
        );
        self.wait_events(SETTLE, None);
        let dom = self.call(
            s,
            "Runtime.evaluate",
            json!({ "expression": "document.documentElement.outerHTML", "returnByValue": true }),
        );
        let dom = dom["result"]["value"]
            .as_str()
            .expect("the page's HTML")
            .to_owned();
        let shot = self.call(
            s,
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        if let Some(dir) = screenshot.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(screenshot, png).expect("write the screenshot");
        let console_errors = self
            .events
            .iter()
            .filter(|e| e.get("sessionId").and_then(Value::as_str) == s)
            .filter_map(console_error)
            .collect();
        Page {
            dom,
            console_errors,
        }
    }

    fn close(mut self) {
        let id = self.next_id;
        let mut bytes =
            serde_json::to_vec(&json!({ "id": id, "method": "Browser.close" })).unwrap();
        bytes.push(0);
        let _ = self.commands.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of an event that reports an error on the page, if it is one.
fn console_error(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event.get("method")?.as_str()? {
        "Runtime.consoleAPICalled" if params["type"] == "error" || params["type"] == "assert" => {
            let args: Vec<String> = params["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| match v.get("value") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => v["description"].as_str().unwrap_or("?").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(format!("console.error: {}", args.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let d = &params["exceptionDetails"];
            let text = d["exception"]["description"]
                .as_str()
                .or_else(|| d["text"].as_str())
                .unwrap_or("exception");
            Some(format!("uncaught: {text}"))
        }
        "Log.entryAdded" if params["entry"]["level"] == "error" => Some(format!(
            "log ({}): {} {}",
            params["entry"]["source"].as_str().unwrap_or("?"),
            params["entry"]["text"].as_str().unwrap_or(""),
            params["entry"]["url"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}

/// Standard base64 (the screenshot's encoding), padding optional.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8"), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
    assert_eq!(base64_decode(""), b"");
}
