//! The endpoint's server before it moved onto hyper (src/http/server.rs at the commit that
//! vendored uPlot), kept here unchanged but for its imports and constructor as the baseline
//! of the scrape bench: an acceptor thread, one worker thread per connection, at most
//! `max_connections` at once.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ringmeter::WeakEngine;

use crate::old_request::{head_end, parse_request, Request};

/// How long closing a connection waits for the client to close its side (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
/// At most this many bytes are read and discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// The acceptor's pause after a failed `accept` (for instance out of file descriptors), so a
/// persistent failure does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The acceptor thread's state.
pub(super) struct Acceptor {
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
    /// The acceptor of `listener` for `engine`, with the limits of `options`; it stops once
    /// `stop` is set.
    pub(super) fn new(listener: TcpListener, engine: WeakEngine, stop: Arc<AtomicBool>) -> Self {
        Self {
            listener,
            engine,
            stop,
            active: Arc::new(AtomicUsize::new(0)),
            max_connections: 8,
            read_timeout: Duration::from_secs(5),
            max_header_bytes: 8 * 1024,
        }
    }

    /// Accepts connections until `stop` is set, then joins the workers.
    pub(super) fn run(self) {
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
                    thread::sleep(ACCEPT_ERROR_PAUSE);
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
            let spawned = thread::Builder::new()
                .name("ringmeter-http-conn".into())
                .spawn(move || {
                    let _slot = slot;
                    conn.handle(stream);
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                // The closure (with the stream and the slot) was dropped: the connection
                // closes unanswered and the slot is free again.
                Err(_) => thread::sleep(ACCEPT_ERROR_PAUSE),
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
        let format = req.format();
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
