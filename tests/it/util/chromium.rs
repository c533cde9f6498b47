//! Headless Chromium for the tests of HTML pages: load a page, read its DOM after load, keep a
//! screenshot, and collect the console errors and uncaught exceptions.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: it
//! reads commands from fd 3 and writes replies and events to fd 4, each a JSON message ended by
//! a NUL byte), which, unlike its log, tells a console error from a console message. A missing
//! Chromium skips the calling test (see [`find`]).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What a loaded page showed.
pub struct Page {
    /// The document's HTML after the load event (`document.documentElement.outerHTML`).
    pub dom: String,
    /// Console messages of level error and uncaught exceptions (page errors), in order.
    pub console_errors: Vec<String>,
}

/// The Chromium binary (`chromium`, `chromium-browser` or `google-chrome` on the `PATH`, or
/// `RINGMETER_CHROMIUM`), or `None`, with a note on stderr, when there is none. With
/// `RINGMETER_REQUIRE_INTEROP=1` a missing Chromium panics instead, as the other interop
/// tools do.
pub fn find() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("RINGMETER_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    for c in candidates {
        let ok = Command::new(&c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(c);
        }
    }
    if std::env::var_os("RINGMETER_REQUIRE_INTEROP").is_some_and(|v| v == "1") {
        panic!("chromium is required (RINGMETER_REQUIRE_INTEROP=1) but cannot be run");
    }
    eprintln!("note: chromium not found; skipping (set RINGMETER_REQUIRE_INTEROP=1 to fail)");
    None
}

/// Loads `url` in a headless Chromium at 1280×1800, waits for the load event, and returns
/// the DOM and the console errors; writes a PNG screenshot of the viewport to `screenshot`.
///
/// # Panics
/// When Chromium cannot be started, does not answer within a minute, or a command fails.
pub fn load(chromium: &Path, url: &str, screenshot: &Path) -> Page {
    let profile = std::env::temp_dir().join(format!(
        "ringmeter-chromium-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    let (cmd_read, cmd_write) = pipe();
    let (ev_read, ev_write) = pipe();
    let (cmd_fd, ev_fd) = (raw(&cmd_read), raw(&ev_write));
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-pipe",
            "--window-size=1280,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only calls fcntl and
    // dup2, which are async-signal-safe, on descriptors that are open in the child. Both ends
    // are first copied above 10, so that neither is overwritten by the other's dup2 (or left
    // close-on-exec by a dup2 onto itself).
    unsafe {
        command.pre_exec(move || {
            let (a, b) = (
                libc::fcntl(cmd_fd, libc::F_DUPFD, 10),
                libc::fcntl(ev_fd, libc::F_DUPFD, 10),
            );
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("start chromium");
    drop((cmd_read, ev_write));
    let mut session = Session::new(child, cmd_write, ev_read);
    let page = session.load(url, screenshot);
    session.close();
    let _ = std::fs::remove_dir_all(&profile);
    page
}

/// A new pipe: (read end, write end), both closed on exec (the child gets its copies by dup2).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two descriptors, as pipe2 requires.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (read, write)
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// One browser over the pipe, attached to one page.
struct Session {
    child: Child,
    commands: std::fs::File,
    /// Messages read from the browser by a reader thread.
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session_id: Option<String>,
    console_errors: Vec<String>,
    /// Events seen while waiting for replies.
    events: Vec<Value>,
    deadline: Instant,
}

impl Session {
    fn new(child: Child, commands: OwnedFd, events: OwnedFd) -> Session {
        let (tx, rx) = mpsc::channel();
        let reader = std::fs::File::from(events);
        thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Session {
            child,
            commands: std::fs::File::from(commands),
            messages: rx,
            next_id: 1,
            session_id: None,
            console_errors: Vec::new(),
            events: Vec::new(),
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    /// The next message, or a panic at the deadline.
    fn next(&mut self) -> Value {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(v) => {
                self.note(&v);
                v
            }
            Err(e) => {
                let _ = self.child.kill();
                panic!("chromium did not answer: {e}");
            }
        }
    }

    /// Keeps console errors and page errors.
    fn note(&mut self, v: &Value) {
        let params = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                let text: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| match &a["value"] {
                        Value::String(s) => s.clone(),
                        Value::Null => a["description"].as_str().unwrap_or("").to_owned(),
                        other => other.to_string(),
                    })
                    .collect();
                self.console_errors.push(text.join(" "));
            }
            Some("Runtime.exceptionThrown") => {
                let d = &params["exceptionDetails"];
                let text = d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("uncaught exception");
                self.console_errors.push(text.to_owned());
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let text = params["entry"]["text"].as_str().unwrap_or("");
                self.console_errors.push(text.to_owned());
            }
            _ => {}
        }
    }

    /// Sends a command (to the attached page when there is one) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session_id {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        loop {
            let v = self.next();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Waits for the event `method` of the attached page.
    fn wait_for(&mut self, method: &str) {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            self.events.remove(at);
            return;
        }
        while self.next()["method"] != method {}
    }

    fn load(&mut self, url: &str, screenshot: &Path) -> Page {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session_id = attached["sessionId"].as_str().map(str::to_owned);
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(domain, json!({}));
        }
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1800, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("Page.loadEventFired");
        let dom = self.call(
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        );
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64(shot["data"].as_str().expect("screenshot data"));
        if let Some(dir) = screenshot.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(screenshot, png).unwrap();
        Page {
            dom: dom["result"]["value"].as_str().unwrap_or("").to_owned(),
            console_errors: std::mem::take(&mut self.console_errors),
        }
    }

    fn close(mut self) {
        self.session_id = None;
        let id = self.next_id;
        let msg = json!({"id": id, "method": "Browser.close"});
        let mut bytes = serde_json::to_vec(&msg).unwrap();
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

/// Decodes standard base64 (with padding), as the protocol sends binary data.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0_u32;
        for (k, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * k);
        }
        let keep = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + keep]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGk="), b"hi");
    assert_eq!(base64("YWJj"), b"abc");
}
