//! The metrics endpoint (feature `http`): answers, bad requests, limits, concurrent scrapes
//! while recording, the engine going away, and a real Prometheus server scraping it.
//!
//! Run with `cargo test --features http --test it http::`. The Prometheus test runs when a
//! `prometheus` binary is on `PATH` (Debian package `prometheus`) and is skipped otherwise,
//! unless `RINGMETER_REQUIRE_INTEROP=1`, which makes a missing binary a failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringmeter::export::prom::{Format, CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
use ringmeter::http::{serve, MetricsServer, ServeOptions};
use ringmeter::{Engine, Error};

/// What Prometheus 2.x sends as `Accept`.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A parsed answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// Sends `request` as is, reads until the server closes, parses the answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(request).expect("send");
    read_answer(&mut conn)
}

/// Reads until the server closes; true if it closed without answering.
fn closed_unanswered(conn: &mut TcpStream) -> bool {
    let mut raw = Vec::new();
    // A reset counts as closed too.
    let _ = conn.read_to_end(&mut raw);
    raw.is_empty()
}

fn read_answer(conn: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read answer");
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    // HTTP/1.0 requests are answered in HTTP/1.0.
    assert!(
        matches!(parts.next(), Some("HTTP/1.1" | "HTTP/1.0")),
        "{status_line}"
    );
    let status = parts.next().unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body,
    }
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Answer {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{accept}\r\n");
    exchange(addr, request.as_bytes())
}

/// A manual engine with a few recorded calls, flushed.
fn manual_engine() -> Engine {
    let engine = Engine::builder().start_manual().unwrap();
    let op = engine.op("db.query").unwrap();
    for i in 1..=7u64 {
        op.record_ns(i * 1_000);
    }
    op.record_error_ns(50_000);
    engine.flush().unwrap();
    engine
}

fn local() -> ServeOptions {
    ServeOptions::new("127.0.0.1:0")
}

#[test]
fn get_metrics_serves_the_rendered_snapshot() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let a = get(addr, "/metrics", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.body, engine.render_metrics(Format::Text));
    assert!(a
        .text()
        .contains("ringmeter_calls_total{op=\"db.query\"} 8\n"));
    assert_eq!(a.header("Content-Type"), Some(CONTENT_TYPE));
    assert_eq!(a.header("Content-Length"), Some(&*a.body.len().to_string()));
    assert_eq!(a.header("Connection"), Some("close"));

    // A query string is ignored; HTTP/1.0 needs no Host.
    let a = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(a.status, 200);
    assert_eq!(a.body, engine.render_metrics(Format::Text));

    // What Prometheus asks for.
    let a = get(addr, "/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Type"), Some(OPENMETRICS_CONTENT_TYPE));
    assert_eq!(a.body, engine.render_metrics(Format::OpenMetrics));

    // HEAD: the same headers, no body.
    let a = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(a.status, 200);
    assert!(a.body.is_empty());
    let length = engine.render_metrics(Format::Text).len().to_string();
    assert_eq!(a.header("Content-Length"), Some(&*length));
    assert_eq!(a.header("Content-Type"), Some(CONTENT_TYPE));

    // The body follows the published snapshot.
    engine.op("db.query").unwrap().record_ns(1_000);
    engine.flush().unwrap();
    let a = get(addr, "/metrics", None);
    assert!(a
        .text()
        .contains("ringmeter_calls_total{op=\"db.query\"} 9\n"));
    server.shutdown();
}

#[test]
fn other_paths_and_methods() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();

    for path in [
        "/metricsx",
        "/metrics/",
        "/favicon.ico",
        "/api",
        "/api/snapshot/",
    ] {
        assert_eq!(get(addr, path, None).status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let a = exchange(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
                .as_bytes(),
        );
        assert_eq!(a.status, 405, "{method}");
        assert_eq!(a.header("Allow"), Some("GET, HEAD"));
    }
    // Only HTTP/1.0 and 1.1 request lines parse.
    assert_eq!(exchange(addr, b"GET /metrics HTTP/2.0\r\n\r\n").status, 400);
}

#[test]
fn malformed_requests_get_400_and_the_server_keeps_serving() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();

    let garbage: [&[u8]; 6] = [
        b"\x00\xff\xfe garbage \x01\x02\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n", // no Host
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"GET metrics HTTP/1.0\r\n\r\n",
    ];
    for g in garbage {
        assert_eq!(
            exchange(addr, g).status,
            400,
            "{:?}",
            String::from_utf8_lossy(g)
        );
    }

    // Closed in the middle of the head: nothing to answer, closed.
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /metr").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_unanswered(&mut conn));

    // Closed before sending anything: no answer, nothing breaks.
    drop(TcpStream::connect(addr).unwrap());

    // A head over the limit (8 KiB by default).
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let a = exchange(addr, &huge);
    assert_eq!(a.status, 431);

    // A limit set lower applies; a head just under it passes.
    let small = serve(&engine, local().max_header_bytes(256)).unwrap();
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'p', 256 - head.len() - 4));
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), 256);
    assert_eq!(exchange(small.local_addr(), &head).status, 200);
    head.insert(40, b'p');
    assert_eq!(exchange(small.local_addr(), &head).status, 431);

    assert_eq!(get(addr, "/metrics", None).status, 200);
}

#[test]
fn a_silent_client_times_out_while_others_are_served() {
    let engine = manual_engine();
    let server = serve(&engine, local().read_timeout(Duration::from_millis(300))).unwrap();
    let addr = server.local_addr();

    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Another client is served while the silent one holds its connection.
    let a = get(addr, "/metrics", None);
    assert_eq!(a.status, 200);
    // The silent one is closed.
    assert!(closed_unanswered(&mut silent));

    // A client that sends its head one byte at a time slower than the deadline allows.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut closed = false;
    for b in b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n" {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
        // Stop once the server has closed (after the deadline).
        slow.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let ready = !matches!(slow.peek(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
        slow.set_nonblocking(false).unwrap();
        if ready {
            closed = true;
            break;
        }
    }
    assert!(closed, "the whole head was sent before the deadline");
    assert!(closed_unanswered(&mut slow));
    server.shutdown();
}

#[test]
fn connections_above_the_limit_get_503() {
    let engine = manual_engine();
    let server = serve(
        &engine,
        local()
            .max_connections(1)
            .read_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let addr = server.local_addr();

    // Holds the only slot until its read timeout.
    let mut holder = TcpStream::connect(addr).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Accepted after the holder (connections are accepted in order): refused at once.
    let mut refused = TcpStream::connect(addr).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let a = read_answer(&mut refused);
    assert_eq!(a.status, 503);
    assert_eq!(a.text(), "too many connections, try again later\n");
    assert!(closed_unanswered(&mut holder));
    drop(holder);

    // The slot comes back once the holder's worker ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = get(addr, "/metrics", None);
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503);
        assert!(Instant::now() < deadline, "the slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bind_and_option_errors() {
    let engine = manual_engine();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    match serve(&engine, ServeOptions::new(addr.clone())) {
        Err(Error::Bind { addr: a, source }) => {
            assert_eq!(a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected Error::Bind, got {other:?}"),
    }
    // A second server on a port the first one holds.
    let first = serve(&engine, local()).unwrap();
    let err = serve(&engine, ServeOptions::new(first.local_addr().to_string())).unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&first.local_addr().to_string()));
    assert!(std::error::Error::source(&err).is_some());

    for bad in [
        "",
        "not an address",
        "127.0.0.1",
        "127.0.0.1:99999",
        "localhost:9464",
        ":9464",
    ] {
        match serve(&engine, ServeOptions::new(bad)) {
            Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "http.addr", "{bad}"),
            other => panic!("{bad:?}: expected InvalidConfig, got {other:?}"),
        }
    }
    let bad_options = [
        local().max_connections(0),
        local().max_connections(100_000),
        local().read_timeout(Duration::ZERO),
        local().max_header_bytes(10),
        local().max_header_bytes(usize::MAX),
    ];
    for options in bad_options {
        let err = serve(&engine, options.clone()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{options:?}: {err:?}"
        );
    }
    assert_eq!(ServeOptions::default().addr(), "127.0.0.1:9464");
    // The engine and the other server are untouched.
    assert_eq!(get(first.local_addr(), "/metrics", None).status, 200);
}

/// Checks one exposition in the text format 0.0.4: every line a comment or
/// `name{labels} value [timestamp]`.
fn check_text_format(body: &str) -> Result<(), String> {
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("no final newline".into());
    }
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        check_sample(line).map_err(|e| format!("{e}: {line:?}"))?;
    }
    Ok(())
}

fn check_sample(line: &str) -> Result<(), &'static str> {
    let is_name = |c: char, first: bool| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
    };
    let mut chars = line.char_indices().peekable();
    let mut name_len = 0;
    while let Some(&(_, c)) = chars.peek() {
        if !is_name(c, name_len == 0) {
            break;
        }
        name_len += 1;
        chars.next();
    }
    if name_len == 0 {
        return Err("no metric name");
    }
    if chars.peek().map(|&(_, c)| c) == Some('{') {
        chars.next();
        loop {
            match chars.peek().map(|&(_, c)| c) {
                Some('}') => {
                    chars.next();
                    break;
                }
                Some(c) if is_name(c, true) => {}
                _ => return Err("bad label name"),
            }
            while chars.peek().is_some_and(|&(_, c)| is_name(c, false)) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err("bad label");
            }
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\' | '"' | 'n') => {}
                        _ => return Err("bad escape"),
                    },
                    Some('\n') | None => return Err("unterminated label value"),
                    Some(_) => {}
                }
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => {}
                Some('}') => break,
                _ => return Err("bad label separator"),
            }
        }
    }
    let Some((i, ' ')) = chars.next() else {
        return Err("no space before the value");
    };
    let mut rest = line[i + 1..].split(' ');
    let value = rest.next().ok_or("no value")?;
    if value.parse::<f64>().is_err() {
        return Err("value is not a number");
    }
    if let Some(ts) = rest.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if rest.next().is_some() {
        return Err("trailing fields");
    }
    Ok(())
}

#[test]
fn the_text_checker_rejects_bad_lines() {
    check_text_format("# HELP a b\na 1\na{b=\"c\\\"\",d=\"\"} 2.5 123\nx{} +Inf\n").unwrap();
    for bad in [
        "1a 1\n",
        "a\n",
        "a x\n",
        "a{b=c} 1\n",
        "a{b=\"c} 1\n",
        "a  1\n",
        "a 1",
    ] {
        assert!(check_text_format(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn concurrent_scrapes_while_recording() {
    const RECORDERS: usize = 2;
    const CALLS: usize = 20_000;
    const SCRAPERS: usize = 4;
    const SCRAPES: usize = 50;

    let engine = Engine::builder()
        .window(Duration::from_millis(50))
        .grace(Duration::from_millis(20)) // at most the window
        .start()
        .unwrap();
    let op = engine.op("db.query").unwrap();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();

    std::thread::scope(|s| {
        for _ in 0..RECORDERS {
            s.spawn(move || {
                for i in 0..CALLS {
                    let mut t = op.start();
                    if i % 97 == 0 {
                        t.fail();
                    }
                    drop(t);
                    if i % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let scrapers: Vec<_> = (0..SCRAPERS)
            .map(|k| {
                s.spawn(move || {
                    for j in 0..SCRAPES {
                        // max_connections is 1024 and 4 scrapers run: never refused.
                        let accept = (k + j) % 2 == 0;
                        let a = get(
                            addr,
                            "/metrics",
                            accept.then_some("text/plain;version=0.0.4"),
                        );
                        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                        assert_eq!(a.header("Content-Type"), Some(CONTENT_TYPE));
                        assert_eq!(a.header("Content-Length"), Some(&*a.body.len().to_string()));
                        check_text_format(&a.text()).unwrap();
                    }
                })
            })
            .collect();
        for s in scrapers {
            s.join().unwrap();
        }
    });

    server.shutdown();
    engine.shutdown().unwrap();
    let snap = engine.snapshot();
    let stats = snap.totals("db.query").unwrap();
    assert_eq!(stats.calls(), (RECORDERS * CALLS) as u64);
    let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    assert!(text.contains(&format!(
        "ringmeter_calls_total{{op=\"db.query\"}} {}\n",
        RECORDERS * CALLS
    )));
}

#[test]
fn the_engine_going_away_gives_503() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/metrics", None).status, 200);

    // The server holds no strong handle: dropping this one shuts the engine down.
    let weak = engine.downgrade();
    drop(engine);
    assert!(weak.upgrade().is_none());
    let a = get(addr, "/metrics", None);
    assert_eq!(a.status, 503);
    assert_eq!(get(addr, "/other", None).status, 404);

    // Dropping the server stops and joins it: the port is free again. (Binding it is the
    // proof; a connect attempt is not, now that other tests in this process open sockets: a
    // connect to a free local port can even succeed by connecting to itself.)
    drop(server);
    let _again = TcpListener::bind(addr).expect("the port is released");
}

#[test]
fn shutdown_waits_for_requests_in_flight() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();
    // A request whose head is not complete yet when shutdown starts.
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // Wait until its worker runs (the acceptor takes connections in order).
    assert_eq!(get(addr, "/metrics", None).status, 200);
    let finish = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        conn.write_all(b"Host: a\r\n\r\n").unwrap();
        read_answer(&mut conn)
    });
    server.shutdown();
    assert_eq!(finish.join().unwrap().status, 200);
}

// --- A real Prometheus server scraping the endpoint. ---

/// `prometheus` on `PATH`, if any.
fn find_on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    })
}

/// A child process killed (and reaped) when dropped, and a directory removed.
struct Cleanup {
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP/1.0 GET for the Prometheus API; `None` while it is not up.
fn http_get(addr: SocketAddr, target: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw.get(9..12)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn prometheus_scrapes_the_endpoint() {
    let required = std::env::var("RINGMETER_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let Some(prometheus) = find_on_path("prometheus") else {
        assert!(
            !required,
            "RINGMETER_REQUIRE_INTEROP=1 but no `prometheus` binary on PATH (Debian package `prometheus`)"
        );
        eprintln!("skipped: no `prometheus` binary on PATH (Debian package `prometheus`)");
        return;
    };

    let engine = manual_engine(); // 8 calls of db.query
    let server = serve(&engine, local()).unwrap();

    let dir = std::env::temp_dir().join(format!(
        "ringmeter-http-prometheus-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut cleanup = Cleanup {
        child: None,
        dir: dir.clone(),
    };
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ringmeter\n    static_configs:\n      - targets: ['{}']\n",
            server.local_addr()
        ),
    )
    .unwrap();
    // Prometheus needs a port number on its command line, and a port found free can be taken
    // by another process before Prometheus binds it: when it exits for that reason, start it
    // again on another port.
    let log = dir.join("prometheus.log");
    let start = |web: SocketAddr| {
        let log_file = std::fs::File::create(&log).unwrap();
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start prometheus")
    };
    let mut web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    cleanup.child = Some(start(web));
    let mut restarts = 0;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Some(Ok(Some(status))) = cleanup.child.as_mut().map(|c| c.try_wait()) {
            let text = read_log(&log);
            if text.contains("address already in use") && restarts < 5 {
                restarts += 1;
                web = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                cleanup.child = Some(start(web));
                continue;
            }
            panic!("prometheus exited with {status}:\n{text}");
        }
        if let Some((200, body)) = http_get(web, "/api/v1/query?query=ringmeter_calls_total") {
            if body.contains("\"op\":\"db.query\"") {
                assert!(
                    body.contains("\"job\":\"ringmeter\"") && body.contains(",\"8\"]"),
                    "unexpected value: {body}"
                );
                break;
            }
            last = body;
        }
        if Instant::now() > deadline {
            let targets = http_get(web, "/api/v1/targets")
                .map(|(_, b)| b)
                .unwrap_or_default();
            panic!(
                "prometheus did not report ringmeter_calls_total within 30 s\nlast query answer: {last}\n\
                 targets: {targets}\nlog:\n{}",
                read_log(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(cleanup);
    server.shutdown();
}

/// `MetricsServer` is a plain handle that can move to another thread.
#[test]
fn server_handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MetricsServer>();
    assert_send_sync::<ServeOptions>();
}

#[test]
fn a_scrape_succeeds_while_500_idle_connections_are_held() {
    const IDLE: usize = 500;
    let engine = manual_engine();
    // The default options: the connection limit, the timeouts as shipped.
    let server = serve(&engine, local()).unwrap();
    let addr = server.local_addr();
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(addr).expect("connect an idle client"))
        .collect();
    // Each scrape connects after every idle client (they are accepted in order) and is
    // answered while they are all still open.
    for _ in 0..3 {
        let a = get(addr, "/metrics", None);
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert!(a
            .text()
            .contains("ringmeter_calls_total{op=\"db.query\"} 8\n"));
        assert_eq!(get(addr, "/api/snapshot", None).status, 200);
    }
    // Still open: the server has neither answered nor closed them.
    for conn in [&idle[0], &idle[IDLE / 2], &idle[IDLE - 1]] {
        conn.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let e = conn
            .peek(&mut probe)
            .expect_err("an idle connection was answered");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
    drop(idle);
    server.shutdown();
}

const TOKEN: &str = "test-token-0123456789abcdef";

fn get_with_auth(addr: SocketAddr, path: &str, authorization: &str) -> Answer {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {authorization}\r\n\r\n");
    exchange(addr, request.as_bytes())
}

#[test]
fn a_token_is_required_beyond_loopback() {
    let engine = manual_engine();
    // Every address but loopback needs a token.
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match serve(&engine, ServeOptions::new(addr)) {
            Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "http.bearer_token"),
            other => panic!("{addr}: expected InvalidConfig, got {other:?}"),
        }
    }
    // Tokens that are too short, too long or not visible ASCII are refused.
    for bad in [
        "short",
        "has a space in the middle",
        "tab\tinside-0123456789",
        "é-not-ascii-0123456789",
    ] {
        let err = serve(&engine, local().bearer_token(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { ref key, .. } if key == "http.bearer_token"));
        assert!(!err.to_string().contains(bad), "the token leaks into {err}");
    }
    let long = "x".repeat(4097);
    assert!(serve(&engine, local().bearer_token(long)).is_err());

    let server = serve(&engine, ServeOptions::new("0.0.0.0:0").bearer_token(TOKEN)).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    for path in ["/metrics", "/api/snapshot"] {
        let a = get(addr, path, None);
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(
            a.header("WWW-Authenticate"),
            Some("Bearer realm=\"ringmeter\"")
        );
        for wrong in [
            "Bearer test-token-0123456789abcdeF".to_owned(),
            "Bearer test-token-0123456789abcde".to_owned(),
            format!("Bearer {TOKEN}x"),
            format!("Basic {TOKEN}"),
            "Bearer".to_owned(),
        ] {
            let a = get_with_auth(addr, path, &wrong);
            assert_eq!(a.status, 401, "{path} {wrong}");
            assert!(a.body.len() < 100 && !a.text().contains(TOKEN));
        }
        let a = get_with_auth(addr, path, &format!("Bearer {TOKEN}"));
        assert_eq!(a.status, 200, "{path}");
        let a = get_with_auth(addr, path, &format!("bearer {TOKEN}"));
        assert_eq!(a.status, 200, "{path}");
    }
    let a = get_with_auth(addr, "/metrics", &format!("Bearer {TOKEN}"));
    assert_eq!(a.body, engine.render_metrics(Format::Text));
    // The page holds no data and is served without the token.
    assert_eq!(get(addr, "/", None).status, 200);
    server.shutdown();

    // A token set on loopback is required there too.
    let server = serve(&engine, local().bearer_token(TOKEN)).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/metrics", None).status, 401);
    assert_eq!(
        get_with_auth(addr, "/metrics", &format!("Bearer {TOKEN}")).status,
        200
    );
    // Without a token, loopback answers anyone.
    let open = serve(&engine, local()).unwrap();
    assert_eq!(get(open.local_addr(), "/metrics", None).status, 200);
    assert_eq!(
        get_with_auth(open.local_addr(), "/metrics", "Bearer anything").status,
        200
    );
}

#[test]
fn the_dashboard_page_is_served_with_its_assets_inline() {
    let engine = manual_engine();
    let server = serve(&engine, local()).unwrap();
    let a = get(server.local_addr(), "/", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Type"), Some("text/html; charset=utf-8"));
    let csp = a.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let page = a.text();
    assert!(page.contains(include_str!("../../assets/uplot/uPlot.iife.min.js")));
    assert!(page.contains(include_str!("../../assets/dashboard/dashboard.js")));
    assert!(!page.contains("<script src") && !page.contains("<link rel=\"stylesheet\""));
    let head = exchange(server.local_addr(), b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(&*a.body.len().to_string())
    );
}
