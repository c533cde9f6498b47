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
//! | `GET /metrics`, `HEAD /metrics` (query string ignored) | `200`, [`Engine::render_metrics`] in the format the `Accept` header asks for ([`Format::negotiate`](crate::export::prom::Format::negotiate)) |
//! | another method on `/metrics` | `405` with `Allow: GET, HEAD` |
//! | another path | `404` |
//! | a malformed request line or header, HTTP/1.1 without `Host` | `400` |
//! | a request head over the size limit | `431` |
//! | no complete head before the deadline | `408` |
//! | an HTTP version other than 1.0 and 1.1 | `505` |
//! | the engine is gone (every [`Engine`] handle dropped) | `503` |
//! | more than `max_connections` connections at once | `503` |
//!
//! The server holds only a [`WeakEngine`](crate::WeakEngine): dropping the application's
//! handles still shuts the engine down. Rendering loads the published snapshot (no lock the
//! recording threads or the aggregator need) and runs on the worker thread.

// This file: the public API ([`serve`], [`ServeOptions`], [`MetricsServer`]). The acceptor,
// its workers and the answers are in `server.rs`; parsing a request head in `request.rs`.

mod request;
mod server;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::engine::Engine;
use crate::error::Error;
use crate::loom::{AtomicBool, Ordering};
use server::Acceptor;

/// The address [`ServeOptions::default`] listens on: loopback, the port Prometheus exporters
/// of this kind conventionally use.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

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
    let acceptor = Acceptor::new(listener, engine.downgrade(), Arc::clone(&stop), &options);
    let handle = thread::Builder::new()
        .name("ringmeter-http".into())
        .spawn(move || acceptor.run())
        .map_err(Error::Spawn)?;
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(handle),
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
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
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
