//! The server behind [`serve`](super::serve): the accept loop on the server thread's
//! single-threaded tokio runtime, the connection limit, and one hyper HTTP/1 connection task
//! per accepted socket.
//!
//! Why a runtime here and not a thread per connection: an idle connection is then a parked
//! task (a few KiB) instead of a blocked thread, so the limit can be high and a client that
//! holds sockets open cannot keep a scraper out. The runtime lives on the server's thread
//! only; nothing else in the crate runs on it or knows about it.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::routes::Routes;

/// The accept loop's pause after a failed `accept` (for instance out of file descriptors),
/// so a persistent failure does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The answer to a connection above the limit, written without reading its request.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; \
charset=utf-8\r\nContent-Length: 38\r\nConnection: close\r\n\r\ntoo many connections, try again later\n";

/// The connection settings of [`ServeOptions`](super::ServeOptions).
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_connections: usize,
    pub(super) read_timeout: Duration,
    pub(super) max_header_bytes: usize,
}

/// Accepts connections until `stop` is notified, then waits for the open ones to finish.
pub(super) async fn accept_loop(
    listener: TcpListener,
    routes: Arc<Routes>,
    limits: Limits,
    stop: &Notify,
) {
    let mut conns = JoinSet::new();
    let mut stopped = pin!(stop.notified());
    loop {
        let accepted = poll_fn(|cx| {
            if stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        let Some(accepted) = accepted else {
            break;
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // A connection reset before it was accepted, or no descriptors left:
                // nothing to answer; keep serving.
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Reap finished connections, so `len` counts the open ones.
        while conns.try_join_next().is_some() {}
        if conns.len() >= limits.max_connections {
            refuse(&stream);
            continue;
        }
        conns.spawn(connection(stream, Arc::clone(&routes), limits));
    }
    drop(listener);
    // A connection task's panic is reported on stderr and ends that connection only.
    while conns.join_next().await.is_some() {}
}

/// One connection: one request head within the read timeout, one answer, closed; the whole
/// connection within twice the read timeout.
async fn connection(stream: TcpStream, routes: Arc<Routes>, limits: Limits) {
    // Every I/O error here (reset, timeout, broken pipe) only ends this connection.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let answer = routes.answer(&request);
        async move { Ok::<_, Infallible>(answer) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(limits.read_timeout * 2, conn).await;
}

/// Answers a connection above the limit with 503 at once, without reading its request: the
/// answer fits in the socket buffer, so the one non-blocking write does not wait. What the
/// client already sent is discarded first (closing a socket with unread data makes the
/// kernel reset the connection, which can destroy the answer).
fn refuse(stream: &TcpStream) {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.try_write(REFUSED);
}

#[cfg(test)]
mod tests {
    use super::REFUSED;

    #[test]
    fn the_refusal_states_its_length() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
    }
}
