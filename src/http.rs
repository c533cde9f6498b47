//! `GET /metrics` over HTTP/1.x on `std::net` (feature `http`).
//!
//! [`serve`] binds a listener and starts one acceptor thread (`ringmeter-http`). Each accepted
//! connection is handled on its own short-lived worker thread (`ringmeter-http-conn`), at most
//! [`ServeOptions::max_connections`] at once; above that the acceptor answers `503` at once and
//! closes. A worker reads one request head (bounded by [`ServeOptions::max_header_bytes`] and
//! by one deadline, [`ServeOptions::read_timeout`], for the whole head), answers it and closes
//! the connection (`Connection: close`; no keep-alive, no request bodies, no compression).
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics`, `HEAD /metrics` (query string ignored) | `200`, [`Engine::render_metrics`] in the format the `Accept` header asks for ([`Format::negotiate`]) |
//! | another method on `/metrics` | `405` with `Allow: GET, HEAD` |
//! | another path | `404` |
//! | a malformed request line or header, HTTP/1.1 without `Host` | `400` |
//! | a request head over the size limit | `431` |
//! | no complete head before the deadline | `408` |
//! | an HTTP version other than 1.0 and 1.1 | `505` |
//! | the engine is gone (every [`Engine`] handle dropped) | `503` |
//! | more than `max_connections` connections at once | `503` |
//!
//! The server holds only a [`WeakEngine`]: dropping the application's
//! handles still shuts the engine down. Rendering loads the published snapshot (no lock the
//! recording threads or the aggregator need) and runs on the worker thread.

use crate::loom::{AtomicBool, AtomicUsize, Ordering};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::export::prom::Format;
use crate::{Engine, Error, WeakEngine};

/// The address [`ServeOptions::default`] listens on: loopback, the port Prometheus exporters
/// of this kind conventionally use.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// How long closing a connection waits for the client to close its side (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
/// At most this many bytes are read and discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// The acceptor's pause after a failed `accept` (for instance out of file descriptors), so a
/// persistent failure does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long shutting down waits to connect to the listener to wake its acceptor.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of the metrics endpoint; finished by [`serve`].
///
/// Values are checked by [`serve`], which returns [`Error::InvalidConfig`] for the first one
/// out of range.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use ringmeter::http::ServeOptions;
///
/// let options = ServeOptions::new("127.0.0.1:0")
///     .max_connections(4)
///     .read_timeout(Duration::from_secs(2))
///     .max_header_bytes(4096);
/// assert_eq!(options.addr(), "127.0.0.1:0");
/// assert_eq!(ServeOptions::default().addr(), "127.0.0.1:9464");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    addr: String,
    max_connections: usize,
    read_timeout: Duration,
    max_header_bytes: usize,
}

impl Default for ServeOptions {
    /// [`DEFAULT_ADDR`] (`127.0.0.1:9464`), 8 connections, 5 s read timeout, 8 KiB of headers.
    fn default() -> Self {
        Self::new(DEFAULT_ADDR)
    }
}

impl ServeOptions {
    /// Options for listening on `addr`, an IP address and port such as `127.0.0.1:9464`,
    /// `0.0.0.0:9464` or `[::1]:9464` (port 0 picks a free port; host names are not resolved).
    /// The other settings have their defaults.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            max_connections: 8,
            read_timeout: Duration::from_secs(5),
            max_header_bytes: 8 * 1024,
        }
    }

    /// The address as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How many connections are handled at once, 1 to 1024 (default 8); a connection above
    /// the limit gets `503 Service Unavailable` and is closed.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a client has to send its whole request head, and how long one write of the
    /// answer may block, more than zero and at most one hour (default 5 s). A client that
    /// is slower gets `408 Request Timeout`.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The largest request head (request line and headers) accepted, 256 bytes to 1 MiB
    /// (default 8 KiB); a larger one gets `431 Request Header Fields Too Large`.
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    fn validate(&self) -> Result<SocketAddr, Error> {
        if !(1..=1024).contains(&self.max_connections) {
            return Err(Error::invalid(
                "http.max_connections",
                self.max_connections,
                "between 1 and 1024",
            ));
        }
        if self.read_timeout.is_zero() || self.read_timeout > Duration::from_secs(3600) {
            return Err(Error::invalid(
                "http.read_timeout",
                format_args!("{:?}", self.read_timeout),
                "more than zero and at most one hour",
            ));
        }
        if !(256..=1 << 20).contains(&self.max_header_bytes) {
            return Err(Error::invalid(
                "http.max_header_bytes",
                self.max_header_bytes,
                "between 256 and 1048576",
            ));
        }
        self.addr.trim().parse::<SocketAddr>().map_err(|_| {
            Error::invalid(
                "http.addr",
                format_args!("{:?}", self.addr),
                "an IP address and port, such as 127.0.0.1:9464 or [::1]:9464",
            )
        })
    }
}

/// Serves `GET /metrics` for `engine` until the returned handle is shut down or dropped.
///
/// Binds `options.addr()` and starts the acceptor thread; see the [module docs](self) for
/// the answers. The server keeps only a weak handle on the engine: once every [`Engine`]
/// handle is dropped the engine shuts down as usual and scrapes get `503`.
///
/// # Errors
/// [`Error::InvalidConfig`] for an option out of range or an address that is not an IP
/// address and port, [`Error::Bind`] when the address cannot be listened on (in use, not a
/// local address, no permission), [`Error::Spawn`] when the acceptor thread cannot start.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use ringmeter::http::{serve, ServeOptions};
///
/// let engine = ringmeter::Engine::builder().start_manual()?;
/// engine.op("db.query")?.record_ns(1_500);
/// engine.flush()?;
///
/// let server = serve(&engine, ServeOptions::new("127.0.0.1:0"))?;
/// let mut conn = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
/// let mut response = String::new();
/// conn.read_to_string(&mut response).unwrap();
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("ringmeter_calls_total{op=\"db.query\"} 1\n"));
///
/// server.shutdown(); // stops accepting and joins the server's threads
/// # Ok::<(), ringmeter::Error>(())
/// ```
pub fn serve(engine: &Engine, options: ServeOptions) -> Result<MetricsServer, Error> {
    let addr = options.validate()?;
    let bind_err = |source| Error::Bind {
        addr: options.addr.clone(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = Acceptor {
        listener,
        engine: engine.downgrade(),
        stop: Arc::clone(&stop),
        active: Arc::new(AtomicUsize::new(0)),
        max_connections: options.max_connections,
        read_timeout: options.read_timeout,
        max_header_bytes: options.max_header_bytes,
    };
    let thread = std::thread::Builder::new()
        .name("ringmeter-http".into())
        .spawn(move || acceptor.run())
        .map_err(Error::Spawn)?;
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

/// A running metrics endpoint (see [`serve`]); stops and joins its threads when shut down or
/// dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    /// Set once by `stop`; the acceptor exits when it sees it after an `accept` returns.
    stop: Arc<AtomicBool>,
    /// The acceptor; `None` once joined (or left to exit on its own, see `stop`).
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address the server listens on (with the port chosen when the options said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits until the requests in flight are answered:
    /// each is bounded by the read timeout, the write timeout (the same value) and, for a
    /// client that sent more than its request head, one second of discarding the rest.
    /// Dropping the server does the same.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Waking a blocked `accept`: std offers no way to interrupt it (no `shutdown` on a
        // listener, no timeout on `accept`), so we set the flag and connect to the listener
        // once; the acceptor sees the flag as soon as `accept` returns with that connection.
        // This keeps the acceptor fully blocked while idle, where a non-blocking listener
        // would have to poll. Release: pairs with the acceptor's Acquire load, so the flag is
        // visible to it after it accepts our connection.
        self.stop.store(true, Ordering::Release);
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            // Listening on every address: any local one reaches it; loopback always does.
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, WAKE_TIMEOUT).is_ok() {
            // The acceptor joins its workers before returning; a panic inside it has
            // already been reported on stderr and leaves nothing to clean up.
            let _ = thread.join();
        }
        // Otherwise the connection could not be made (a firewall, no descriptors left):
        // joining could block forever, so the acceptor is left to exit on its own at the
        // next connection it accepts.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The acceptor thread's state.
struct Acceptor {
    listener: TcpListener,
    engine: WeakEngine,
    stop: Arc<AtomicBool>,
    /// Connections being handled by workers; at most `max_connections`.
    active: Arc<AtomicUsize>,
    max_connections: usize,
    read_timeout: Duration,
    max_header_bytes: usize,
}

/// Gives back one connection slot when a worker ends, even by a panic.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        // Relaxed: the counter only bounds the number of workers; it guards no data.
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Acceptor {
    fn run(self) {
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        loop {
            let accepted = self.listener.accept();
            // Acquire: pairs with the Release store in `MetricsServer::stop`.
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // A connection reset before it was accepted, or no descriptors left:
                    // nothing to answer; keep serving.
                    std::thread::sleep(ACCEPT_ERROR_PAUSE);
                    continue;
                }
            };
            workers.retain(|w| !w.is_finished());
            // Relaxed: only this thread increments, so the check cannot race with another
            // increment; decrements only make room.
            if self.active.load(Ordering::Relaxed) >= self.max_connections {
                refuse(stream, self.read_timeout);
                continue;
            }
            self.active.fetch_add(1, Ordering::Relaxed);
            let slot = Slot(Arc::clone(&self.active));
            let conn = Conn {
                engine: self.engine.clone(),
                read_timeout: self.read_timeout,
                max_header_bytes: self.max_header_bytes,
            };
            let spawned = std::thread::Builder::new()
                .name("ringmeter-http-conn".into())
                .spawn(move || {
                    let _slot = slot;
                    conn.handle(stream);
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                // The closure (with the stream and the slot) was dropped: the connection
                // closes unanswered and the slot is free again.
                Err(_) => std::thread::sleep(ACCEPT_ERROR_PAUSE),
            }
        }
        for worker in workers {
            // A worker's panic was reported on stderr; its connection is closed.
            let _ = worker.join();
        }
    }
}

/// Answers a connection above the limit with 503 without reading its request, on the
/// acceptor thread: the answer is small enough for the socket buffer, so the write does not
/// wait for the client.
fn refuse(mut stream: TcpStream, timeout: Duration) {
    let _ = stream.set_write_timeout(Some(timeout.min(Duration::from_millis(100))));
    let _ = write_response(
        &mut stream,
        &Response::error(503, "too many connections, try again later\n"),
        false,
    );
    let _ = stream.shutdown(Shutdown::Write);
    // Discard what the client already sent, without waiting for more: closing a socket with
    // unread data makes the kernel reset the connection, which can destroy the answer.
    if stream.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// What a worker needs to answer one connection.
struct Conn {
    engine: WeakEngine,
    read_timeout: Duration,
    max_header_bytes: usize,
}

impl Conn {
    fn handle(&self, mut stream: TcpStream) {
        // Every I/O error here (reset, timeout, broken pipe) only ends this connection.
        let _ = stream.set_nodelay(true);
        if stream.set_write_timeout(Some(self.read_timeout)).is_err() {
            return;
        }
        let (response, head_only) =
            match read_head(&mut stream, self.max_header_bytes, self.read_timeout) {
                Ok(head) => match parse_request(&head) {
                    Ok(req) => (self.respond(&req), req.method == "HEAD"),
                    Err(status) => (Response::error(status, reason(status)), false),
                },
                Err(HeadError::Closed) => return,
                Err(HeadError::Status(status)) => (Response::error(status, reason(status)), false),
            };
        if write_response(&mut stream, &response, head_only).is_ok() {
            linger(&mut stream);
        }
    }

    fn respond(&self, req: &Request<'_>) -> Response {
        if req.path != "/metrics" {
            return Response::error(404, "not found; metrics are at /metrics\n");
        }
        if req.method != "GET" && req.method != "HEAD" {
            let mut r = Response::error(405, "only GET and HEAD\n");
            r.allow = true;
            return r;
        }
        // A strong handle only while rendering: the engine stays owned by the application.
        let Some(engine) = self.engine.upgrade() else {
            return Response::error(503, "the engine has shut down\n");
        };
        let format = Format::negotiate(req.accept.as_deref());
        let body = engine.render_metrics(format);
        drop(engine);
        Response {
            status: 200,
            content_type: format.content_type(),
            allow: false,
            body,
        }
    }
}

/// After the answer: close our side; if the client sent more than we read (a body, a
/// pipelined request, the rest of an oversized head), read and discard it until the client
/// closes, for at most `LINGER`. Closing with unread bytes would make the kernel reset the
/// connection, and a reset can destroy an answer the client has not read yet. A client that
/// sent only its head (every scraper) costs no wait.
fn linger(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let pending = stream.read(&mut buf);
    if !matches!(pending, Ok(n) if n > 0) || stream.set_nonblocking(false).is_err() {
        // Nothing unread (would block), the client closed (0), or a reset: close now.
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
enum HeadError {
    /// The client closed (or reset) before sending anything: nothing to answer.
    Closed,
    /// Answer with this status and close.
    Status(u16),
}

/// Reads until the end of the request head (an empty line), at most `max` bytes, within
/// `timeout` in total. Returns the head without the empty line.
fn read_head(
    stream: &mut impl ReadTimeout,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + timeout;
    let mut head = Vec::with_capacity(max.min(1024));
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Status(408));
        }
        if stream.set_timeout(left).is_err() {
            return Err(HeadError::Closed);
        }
        let room = (max - head.len()).min(buf.len());
        let n = match stream.read(&mut buf[..room]) {
            Ok(0) if head.is_empty() => return Err(HeadError::Closed),
            // Closed in the middle of the head.
            Ok(0) => return Err(HeadError::Status(400)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Status(408));
            }
            Err(_) => return Err(HeadError::Closed),
        };
        // Search only where the new bytes can complete the terminator.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() >= max {
            return Err(HeadError::Status(431));
        }
    }
}

/// A stream whose reads can be bounded in time (a seam for unit tests).
trait ReadTimeout: Read {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

/// Where the head in `bytes` ends: the offset of the newline that ends the last header
/// line, found as `\n\r\n` or `\n\n` (bare newlines are accepted as line ends).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match bytes.get(i + 1..) {
                Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => return Some(i + 1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// A parsed request head: only what the endpoint uses.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The path without the query string.
    path: &'a str,
    /// Every `Accept` header, joined with `,`.
    accept: Option<String>,
}

/// Parses a request head (without its final empty line), or the status to answer.
fn parse_request(head: &[u8]) -> Result<Request<'_>, u16> {
    let head = std::str::from_utf8(head).map_err(|_| 400u16)?;
    // The newline that ends the last header line (`read_head` keeps it).
    let head = head.strip_suffix('\n').unwrap_or(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(400);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.len() == 8 && v.starts_with("HTTP/") && v.as_bytes()[5].is_ascii_digit() => {
            return Err(505)
        }
        _ => return Err(400),
    };
    let path = request_path(target).ok_or(400u16)?;
    let mut accept: Option<String> = None;
    let mut host = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        // No whitespace before the colon, no obsolete line folding, no empty name.
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(400);
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("host") {
            if host {
                return Err(400);
            }
            host = true;
        } else if name.eq_ignore_ascii_case("accept") {
            match &mut accept {
                Some(a) => {
                    a.push(',');
                    a.push_str(value);
                }
                None => accept = Some(value.to_owned()),
            }
        }
    }
    if http11 && !host {
        return Err(400);
    }
    Ok(Request {
        method,
        path,
        accept,
    })
}

/// The path of a request target in origin form (`/metrics?x`) or absolute form
/// (`http://host:9464/metrics`), without its query; `None` if it is neither.
fn request_path(target: &str) -> Option<&str> {
    if !target.is_ascii() || target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    let path = if target.starts_with('/') {
        target
    } else {
        let rest = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))?;
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    };
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// RFC 9110 `tchar`: the characters of a method or header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An answer; always `Connection: close`.
struct Response {
    status: u16,
    content_type: &'static str,
    /// Send `Allow: GET, HEAD` (405).
    allow: bool,
    body: Vec<u8>,
}

impl Response {
    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            allow: false,
            body: message.as_bytes().to_vec(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Writes `response`; with `head_only` (a `HEAD` request) the headers only, with the
/// `Content-Length` the body would have.
fn write_response(out: &mut impl Write, response: &Response, head_only: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.allow {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    if head_only {
        out.write_all(head.as_bytes())?;
    } else {
        // One buffer, so a small answer leaves in one segment.
        let mut all = head.into_bytes();
        all.extend_from_slice(&response.body);
        out.write_all(&all)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_accepts_crlf_and_bare_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(15));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b""), None);
        assert_eq!(head_end(b"\n"), None);
    }

    #[test]
    fn parses_requests() {
        let r = parse_request(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\naccept: */*\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.accept.as_deref(), Some("text/plain,*/*"));
        let r = parse_request(b"HEAD http://h:1/metrics HTTP/1.0\n").unwrap();
        assert_eq!((r.method, r.path, r.accept), ("HEAD", "/metrics", None));
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b""[..],
            b"GET /metrics",
            b"GET  /metrics HTTP/1.1\r\nHost: a\r\n",
            b"GET /metrics HTTP/1.1\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
            b"GET /metrics HTTP/1.1\r\nHost : a\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nnocolon\r\n",
            b"GET metrics HTTP/1.0\r\n",
            b"G(T /metrics HTTP/1.0\r\n",
            b"GET /metrics HTTP/1.0\r\nX: \x01\r\n",
            b"GET /metrics HTTP/1.0\r\nX: \xff\r\n",
            b"GET /metrics FTP/1.0\r\n",
        ] {
            assert_eq!(
                parse_request(bad),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_request(b"GET /metrics HTTP/2.0\r\n"), Err(505));
    }

    /// A reader that yields its chunks one per read, then times out.
    struct Chunks(Vec<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let chunk = &mut self.0[0];
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    impl ReadTimeout for Chunks {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reads_a_head_split_anywhere() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\nrest";
        for split in 0..request.len() {
            let mut r = Chunks(vec![request[..split].to_vec(), request[split..].to_vec()]);
            r.0.retain(|c| !c.is_empty());
            let head = read_head(&mut r, 1024, Duration::from_secs(1)).unwrap();
            assert_eq!(head, b"GET /metrics HTTP/1.1\r\nHost: a\r\n");
        }
    }

    #[test]
    fn bounds_the_head() {
        let mut r = Chunks(vec![vec![b'a'; 5000]]);
        assert!(matches!(
            read_head(&mut r, 1024, Duration::from_secs(1)),
            Err(HeadError::Status(431))
        ));
        let mut r = Chunks(vec![b"GET / HTTP/1.1\r\n".to_vec()]);
        assert!(matches!(
            read_head(&mut r, 1024, Duration::from_secs(1)),
            Err(HeadError::Status(408))
        ));
        let mut r = Chunks(vec![]);
        assert!(matches!(
            read_head(&mut r, 1024, Duration::from_secs(1)),
            Err(HeadError::Status(408))
        ));
    }
}
