//! `GET /metrics`, `GET /api/snapshot` and the live dashboard `GET /` over HTTP/1.x
//! (feature `http`).
//!
//! [`serve`] binds a listener and starts one thread (`ringmeter-http`) that owns a small
//! single-threaded tokio runtime; hyper's HTTP/1 server handles each connection as a task on
//! it. An idle connection costs a task and its buffers, not a thread, so hundreds of idle
//! connections never keep a scrape out; [`ServeOptions::max_connections`] (default 1024)
//! bounds them, and above it the server answers `503` at once and closes. A connection
//! sends one request head within [`ServeOptions::read_timeout`] (or is closed), gets one
//! answer and is closed (`Connection: close`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics`, `HEAD /metrics` (query string ignored) | `200`, [`Engine::render_metrics`] in the format the `Accept` header asks for ([`Format::negotiate`](crate::export::prom::Format::negotiate)) |
//! | `GET /api/snapshot` | `200`, [`Engine::snapshot`] as JSON (`application/json`; schema in `docs/dashboard.md` and `docs/snapshot.schema.json`) |
//! | `GET /` | `200`, the live dashboard: one HTML page with its script, styles and uPlot inline; it reads `/api/snapshot` every window |
//! | another method on those paths | `405` with `Allow: GET, HEAD` |
//! | another path | `404` |
//! | `/metrics` or `/api/snapshot` without the configured bearer token, or with a wrong one | `401` with `WWW-Authenticate: Bearer` |
//! | a malformed request line or header, HTTP/1.1 without one `Host` | `400` |
//! | a request head over the size limit | `431` |
//! | the engine is gone (every [`Engine`] handle dropped) | `503` |
//! | more than `max_connections` connections at once | `503` |
//!
//! **Access.** The default address is loopback. Listening on any other address (including
//! `0.0.0.0`) requires a bearer token ([`ServeOptions::bearer_token`]): [`serve`] refuses to
//! start without one and says on stderr that the data needs it. With a token set, on any
//! address, `/metrics` and `/api/snapshot` answer `401` unless the request carries
//! `Authorization: Bearer <token>`; the token is compared in constant time. The page at `/`
//! holds no data (it is the same static file for everyone) and is served without a token;
//! it asks for the token and sends it with each request for data.
//!
//! The server holds only a [`WeakEngine`](crate::WeakEngine): dropping the application's
//! handles still shuts the engine down. Answers load the published snapshot (no lock the
//! recording threads or the aggregator need).

// This file: the public API ([`serve`], [`ServeOptions`], [`MetricsServer`]). The runtime,
// the accept loop and the connections are in `server.rs`; the answers in `routes.rs`; the
// page in `assets/dashboard/`.

mod routes;
mod server;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::Engine;
use crate::error::Error;
use routes::Routes;
use server::Limits;

/// The address [`ServeOptions::default`] listens on: loopback, the port Prometheus exporters
/// of this kind conventionally use.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// The shortest bearer token accepted, in characters.
const MIN_TOKEN_LEN: usize = 16;
/// The longest bearer token accepted, in characters.
const MAX_TOKEN_LEN: usize = 4096;

/// Settings of the endpoint; finished by [`serve`].
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
///     .max_header_bytes(4096)
///     .bearer_token("a-long-random-secret-0123456789");
/// assert_eq!(options.addr(), "127.0.0.1:0");
/// assert_eq!(ServeOptions::default().addr(), "127.0.0.1:9464");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    addr: String,
    max_connections: usize,
    read_timeout: Duration,
    max_header_bytes: usize,
    bearer_token: Option<String>,
}

impl Default for ServeOptions {
    /// [`DEFAULT_ADDR`] (`127.0.0.1:9464`), 1024 connections, 5 s read timeout, 8 KiB of
    /// headers, no token.
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
            max_connections: 1024,
            read_timeout: Duration::from_secs(5),
            max_header_bytes: 8 * 1024,
            bearer_token: None,
        }
    }

    /// The address as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How many connections are open at once, 1 to 65536 (default 1024); a connection above
    /// the limit gets `503 Service Unavailable` and is closed. An open connection costs a
    /// task and its buffers (a few KiB) and a file descriptor, not a thread.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a client has to send its whole request head, more than zero and at most one
    /// hour (default 5 s); a client that is slower is disconnected. A connection lasts at
    /// most twice this long, so a client that does not read its answer is disconnected too.
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

    /// Requires `Authorization: Bearer <token>` on `/metrics` and `/api/snapshot`; required
    /// when the address is not loopback. The token is 16 to 4096 visible ASCII characters
    /// (no spaces); use a random one, for instance `openssl rand -hex 32`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Whether a bearer token is set.
    pub fn has_bearer_token(&self) -> bool {
        self.bearer_token.is_some()
    }

    fn validate(&self) -> Result<SocketAddr, Error> {
        if !(1..=65536).contains(&self.max_connections) {
            return Err(Error::invalid(
                "http.max_connections",
                self.max_connections,
                "between 1 and 65536",
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
        if let Some(token) = &self.bearer_token {
            let visible = token.bytes().all(|b| b.is_ascii_graphic());
            if !visible || !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) {
                // The token itself is never echoed into an error message.
                return Err(Error::invalid(
                    "http.bearer_token",
                    format_args!("a value of {} bytes", token.len()),
                    "16 to 4096 visible ASCII characters without spaces",
                ));
            }
        }
        let addr = self.addr.trim().parse::<SocketAddr>().map_err(|_| {
            Error::invalid(
                "http.addr",
                format_args!("{:?}", self.addr),
                "an IP address and port, such as 127.0.0.1:9464 or [::1]:9464",
            )
        })?;
        if !addr.ip().is_loopback() && self.bearer_token.is_none() {
            return Err(Error::invalid(
                "http.bearer_token",
                "none",
                format!(
                    "a bearer token when listening beyond loopback ({addr}): \
                     set ServeOptions::bearer_token, or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(addr)
    }
}

/// Serves `/metrics`, `/api/snapshot` and the dashboard for `engine` until the returned
/// handle is shut down or dropped.
///
/// Binds `options.addr()` and starts the server thread; see the [module docs](self) for the
/// answers and the access rule. When the address is not loopback it prints on stderr that
/// the data needs the bearer token. The server keeps only a weak handle on the engine: once
/// every [`Engine`] handle is dropped the engine shuts down as usual and data requests get
/// `503`.
///
/// # Errors
/// [`Error::InvalidConfig`] for an option out of range, an address that is not an IP
/// address and port, or a non-loopback address without a bearer token; [`Error::Bind`] when
/// the address cannot be listened on (in use, not a local address, no permission);
/// [`Error::Spawn`] when the server's thread or its runtime cannot start.
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
/// server.shutdown(); // stops accepting and joins the server's thread
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
    listener.set_nonblocking(true).map_err(bind_err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(Error::Spawn)?;
    let listener = {
        // Registering the listener with the runtime's reactor needs the runtime's context.
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(bind_err)?
    };
    let routes = Arc::new(Routes::new(
        engine.downgrade(),
        options.bearer_token.as_deref(),
    ));
    let limits = Limits {
        max_connections: options.max_connections,
        read_timeout: options.read_timeout,
        max_header_bytes: options.max_header_bytes,
    };
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let handle = thread::Builder::new()
        .name("ringmeter-http".into())
        .spawn(move || {
            runtime.block_on(server::accept_loop(listener, routes, limits, &stopped));
        })
        .map_err(Error::Spawn)?;
    if !local_addr.ip().is_loopback() {
        eprintln!(
            "ringmeter: serving http://{local_addr}/ beyond loopback: /metrics and \
             /api/snapshot require `Authorization: Bearer <token>` (the dashboard page asks for it)"
        );
    }
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(handle),
    })
}

/// A running endpoint (see [`serve`]); stops and joins its thread when shut down or dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    /// Notified once by `stop`; the accept loop then stops accepting.
    stop: Arc<Notify>,
    /// The server's thread; `None` once joined.
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address the server listens on (with the port chosen when the options said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits until the connections open are done: each is
    /// bounded by the read timeout for its request head and by twice the read timeout in all.
    /// Dropping the server does the same.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // `notify_one` stores a permit when the loop is not waiting yet, so the stop is
        // never lost.
        self.stop.notify_one();
        // A panic on the server thread has already been reported on stderr and leaves
        // nothing to clean up.
        let _ = thread.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
