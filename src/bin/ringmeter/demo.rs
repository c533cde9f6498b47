//! `ringmeter demo`: the instrumented demo workload, writing its window log, then the stats
//! of what it wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ringmeter::http::{serve, MetricsServer, ServeOptions};
use ringmeter::Builder;

use crate::cli::DemoArgs;
use crate::out::{outln, Out};
use crate::select::{now_ns, Filter};
use crate::show::Ns;
use crate::stats::{calls, print_stats, Plural};
use crate::workload::{work, Ops, NAMES, SLOW};

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    // The environment (RINGMETER_* variables and the RINGMETER_CONFIG file) applies; the
    // demo's own defaults fill in only what it leaves unset, and options given on the
    // command line win over both.
    let env = |name: &str| std::env::var_os(name).is_some();
    let mut builder = Builder::from_env().context("bad ringmeter setting in the environment")?;
    let dir = match &args.log_dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os(ringmeter::env::LOG_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("ringmeter-demo")),
    };
    builder = builder.log_dir(dir.clone());
    let window = match (args.window_ms, std::env::var(ringmeter::env::WINDOW_SECS)) {
        (Some(ms), _) => Duration::from_millis(ms),
        // Already checked by `from_env`.
        (None, Ok(secs)) => Duration::from_secs_f64(secs.trim().parse().unwrap_or(1.0)),
        (None, Err(_)) => Duration::from_millis(500),
    };
    builder = builder
        .window(window)
        .grace((window / 5).min(Duration::from_millis(100)));
    if !env(ringmeter::env::SLOW_THRESHOLD_MS) {
        builder = builder.slow_threshold(SLOW);
    }
    let out = &mut Out::stdout();
    let started_ns = now_ns();
    let engine = builder.start().context("cannot start the engine")?;
    let ops = Ops::register(&engine)?;
    let seconds = args
        .seconds
        .unwrap_or(if args.serve.is_some() { 600 } else { 5 });
    outln!(
        out,
        "ringmeter demo: {} for {seconds} s, {} windows, logging to {}",
        Plural(args.threads, "worker thread"),
        Ns(window.as_nanos() as u64),
        dir.display()
    );
    let _server = match &args.serve {
        Some(addr) => Some(start_dashboard(&engine, addr, out)?),
        None => None,
    };
    out.flush()?;
    let windows = engine.subscribe(256);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(ops, i, &stop))
        })
        .collect::<Result<_, _>>()
        .context("cannot spawn a worker thread")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut closed = 0u64;
    // The earliest start of this run's windows: the first can start before the run when it
    // is longer than the run.
    let mut first_start = started_ns;
    let mut shown = Ok(());
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(report) = windows.recv_timeout(left.min(Duration::from_millis(100))) {
            closed += 1;
            first_start = first_start.min(report.start_unix_ns);
            let calls = report
                .ops
                .iter()
                .fold(0u64, |n, o| n.saturating_add(calls(&o.stats)));
            shown = writeln!(
                out,
                "  window #{} closed: {}",
                report.index,
                Plural(calls, "call")
            )
            .and_then(|()| out.flush());
            if shown.is_err() {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut issued = 0u64;
    for w in workers {
        match w.join() {
            Ok(t) => issued += t.in_order().iter().map(|i| i.calls).sum::<u64>(),
            Err(_) => bail!("a worker thread panicked"),
        }
    }
    engine
        .shutdown()
        .context("the engine did not shut down cleanly")?;
    let snap = engine.snapshot();
    if let Some(status) = log_error(&snap) {
        bail!("the window log could not be written: {status}");
    }
    // Stop only now, with the workers joined and the engine shut down: the log is complete.
    shown?;
    for report in std::iter::from_fn(|| windows.try_recv()) {
        closed += 1;
        first_start = first_start.min(report.start_unix_ns);
    }
    let recorded = NAMES
        .iter()
        .filter_map(|n| snap.totals(n))
        .fold(0u64, |n, s| n.saturating_add(calls(s)));
    outln!(
        out,
        "{} closed and logged; {} issued, {recorded} recorded, counted unsampled or \
         counted dropped\n",
        Plural(closed, "window"),
        Plural(issued, "call"),
    );
    // This run's windows only: the directory may hold earlier runs.
    print_stats(out, &dir, &Filter::since_ns(first_start))?;
    let since = format!("--since @{}", first_start / 1_000_000_000);
    outln!(
        out,
        "\nthe same table again: ringmeter stats {} {since}\n(or `cargo run --release -- stats ...` \
         from the repository)",
        shell_path(&dir)
    );
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the dashboard on `addr` and says where; beyond loopback with a fresh random token,
/// printed in the page's address (the fragment is never sent to the server).
fn start_dashboard(engine: &ringmeter::Engine, addr: &str, out: &mut Out) -> Result<MetricsServer> {
    let loopback = addr
        .trim()
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    let mut options = ServeOptions::new(addr);
    let mut token = None;
    if !loopback {
        let t = random_token().context("cannot make a token for the dashboard")?;
        options = options.bearer_token(t.clone());
        token = Some(t);
    }
    let server = serve(engine, options).context("cannot serve the dashboard")?;
    let mut shown = server.local_addr();
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    match token {
        Some(t) => {
            outln!(out, "dashboard: http://{shown}/#token={t}");
            outln!(
                out,
                "  (listening on {}: /metrics and /api/snapshot need `Authorization: Bearer {t}`)",
                server.local_addr()
            );
        }
        None => outln!(
            out,
            "dashboard: http://{shown}/  (metrics: http://{shown}/metrics)"
        ),
    }
    Ok(server)
}

/// 32 hex digits from the system's random source.
fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The log error a snapshot reports, if any.
fn log_error(snap: &ringmeter::Snapshot) -> Option<String> {
    let status = snap.log.as_ref()?;
    if status.windows_lost == 0 && status.windows_pending == 0 {
        return None;
    }
    Some(
        status
            .last_error
            .clone()
            .unwrap_or_else(|| format!("{} lost", Plural(status.windows_lost, "window"))),
    )
}

fn shell_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
