//! Cost of one scrape of `/metrics` over loopback: the endpoint on hyper (`ringmeter::http`)
//! against the hand-written thread-per-connection server it replaced (`old_server.rs`, kept
//! here as the baseline), in one process, rounds interleaved so both see the same machine.
//!
//! Each scrape is what Prometheus does: connect, `GET /metrics`, read to the close. Reported
//! per scrape: wall time and CPU time of the whole process (client and server threads,
//! `getrusage`), medians over the rounds, and the ratio new / old.
//!
//! `cargo bench --features http --bench scrape` (`cargo test --benches` runs one short round
//! as a check).

mod old_request;
mod old_server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmeter::http::{serve, ServeOptions};
use ringmeter::Engine;

/// Operations in the engine: the exposition is about 40 KB, a mid-sized service's.
const OPS: usize = 20;

fn engine() -> Engine {
    let engine = Engine::builder().start_manual().unwrap();
    for i in 0..OPS {
        let op = engine.op(&format!("service.op_{i}")).unwrap();
        for k in 0..1_000u64 {
            op.record_ns(1_000 + k * 37 * (i as u64 + 1));
        }
    }
    engine
        .counter("jobs.done", &[("queue", "mail")])
        .unwrap()
        .increment(5);
    engine.flush().unwrap();
    engine
}

/// One scrape; the body's length.
fn scrape(addr: SocketAddr) -> usize {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut raw = Vec::with_capacity(64 * 1024);
    conn.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"), "not a 200");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    raw.len() - split - 4
}

/// CPU time of the whole process so far (user + system).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `getrusage` writes one `rusage` into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialized by the successful call above.
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall and CPU time per scrape over `n` scrapes.
fn run(addr: SocketAddr, n: u32) -> (Duration, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..n {
        scrape(addr);
    }
    ((wall.elapsed()) / n, (cpu_time() - cpu) / n)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if bench { (15, 300) } else { (1, 5) };
    let engine = engine();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let old_addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = old_server::Acceptor::new(listener, engine.downgrade(), Arc::clone(&stop));
    let old = thread::spawn(move || acceptor.run());
    let server = serve(&engine, ServeOptions::new("127.0.0.1:0")).unwrap();
    let new_addr = server.local_addr();

    // Both answer the same body (checked before timing).
    let body = scrape(new_addr);
    assert_eq!(scrape(old_addr), body);
    for _ in 0..per_round.min(50) {
        scrape(old_addr);
        scrape(new_addr);
    }

    let (mut old_wall, mut old_cpu, mut new_wall, mut new_cpu) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let mut old_round = || {
            let (w, c) = run(old_addr, per_round);
            old_wall.push(w);
            old_cpu.push(c);
        };
        let mut new_round = || {
            let (w, c) = run(new_addr, per_round);
            new_wall.push(w);
            new_cpu.push(c);
        };
        if round % 2 == 0 {
            old_round();
            new_round();
        } else {
            new_round();
            old_round();
        }
    }
    let (ow, oc, nw, nc) = (
        median(old_wall),
        median(old_cpu),
        median(new_wall),
        median(new_cpu),
    );
    println!(
        "scrape of /metrics over loopback ({OPS} operations, {body} byte body), \
         {rounds} rounds of {per_round} scrapes, medians per scrape:"
    );
    println!(
        "  old (thread per connection): {:8.1} µs wall {:8.1} µs CPU",
        micros(ow),
        micros(oc)
    );
    println!(
        "  new (hyper, one thread)    : {:8.1} µs wall {:8.1} µs CPU",
        micros(nw),
        micros(nc)
    );
    println!(
        "  new / old                  : {:8.2}    wall {:8.2}    CPU",
        nw.as_secs_f64() / ow.as_secs_f64(),
        nc.as_secs_f64() / oc.as_secs_f64()
    );

    server.shutdown();
    stop.store(true, Ordering::Release);
    let _ = TcpStream::connect(old_addr);
    old.join().unwrap();
}
