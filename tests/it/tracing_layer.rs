//! The `tracing` layer end to end: spans from several threads are counted exactly, nested
//! spans are timed each on its own, `ERROR` events and `error` fields fail a span, the
//! engine's sampling rules apply, wall and busy time on a hand-moved clock, spans that move
//! between threads, and names the engine refuses.

use std::time::Duration;

use ringmeter::facade::tracing::Timing;
use ringmeter::{Builder, Clock, Engine, MockClock, OpStats, Rule, Sampling, TracingLayer};
use tracing::dispatcher::{self, Dispatch};
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;

const MS: Duration = Duration::from_millis(1);

fn manual(builder: Builder) -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    let engine = builder.clock(clock).start_manual().expect("valid settings");
    (engine, mock)
}

fn dispatch(layer: TracingLayer) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

fn totals(engine: &Engine, name: &str) -> OpStats {
    engine.flush().unwrap();
    engine.snapshot().totals(name).cloned().unwrap_or_default()
}

#[test]
fn spans_from_many_threads_are_counted_exactly() {
    let engine = Engine::builder()
        .window(Duration::from_millis(20))
        .grace(Duration::from_millis(5))
        .start()
        .unwrap();
    let d = dispatch(TracingLayer::new(&engine));
    const THREADS: u64 = 4;
    const JOBS: u64 = 5_000;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                dispatcher::with_default(&d, || {
                    for i in 0..JOBS {
                        let job = tracing::info_span!("tl.job");
                        let _in_job = job.enter();
                        for _ in 0..2 {
                            tracing::debug_span!("tl.step").in_scope(|| {
                                if i % 100 == 0 {
                                    tracing::error!("step failed");
                                }
                            });
                        }
                    }
                });
            });
        }
    });
    engine.shutdown().unwrap();
    let snap = engine.snapshot();
    let job = snap.totals("tl.job").unwrap();
    let step = snap.totals("tl.step").unwrap();
    assert_eq!(job.calls(), THREADS * JOBS);
    assert_eq!(step.calls(), 2 * THREADS * JOBS);
    // The error events fail the span they are in, not its parent; `errors` counts failures
    // among dropped calls too, so it is exact.
    assert_eq!(job.errors, 0);
    assert_eq!(step.errors, 2 * THREADS * JOBS / 100);
}

#[test]
fn nested_spans_are_timed_each_on_its_own() {
    let (engine, mock) = manual(Engine::builder());
    dispatcher::with_default(&dispatch(TracingLayer::new(&engine)), || {
        let outer = tracing::info_span!("tl.outer");
        let _o = outer.enter();
        mock.advance(MS);
        tracing::info_span!("tl.inner").in_scope(|| mock.advance(2 * MS));
        mock.advance(MS);
        tracing::info_span!("tl.inner").in_scope(|| mock.advance(3 * MS));
    });
    let outer = totals(&engine, "tl.outer");
    let inner = totals(&engine, "tl.inner");
    assert_eq!((outer.count, outer.max_ns), (1, 7_000_000));
    assert_eq!(
        (inner.count, inner.min_ns, inner.max_ns),
        (2, 2_000_000, 3_000_000)
    );
}

#[test]
fn an_error_event_fails_the_span_it_is_in() {
    let (engine, _mock) = manual(Engine::builder());
    dispatcher::with_default(&dispatch(TracingLayer::new(&engine)), || {
        let outer = tracing::info_span!("tl.ev.outer");
        outer.in_scope(|| {
            tracing::info_span!("tl.ev.inner").in_scope(|| tracing::error!("boom"));
            tracing::info_span!("tl.ev.inner").in_scope(|| tracing::warn!("only a warning"));
            tracing::info_span!("tl.ev.inner").in_scope(|| tracing::error!(parent: None, "root"));
        });
        // Outside the span, with the span as explicit parent.
        tracing::error!(parent: &outer, "explicit");
        tracing::error!("in no span at all");
    });
    let outer = totals(&engine, "tl.ev.outer");
    let inner = totals(&engine, "tl.ev.inner");
    assert_eq!((outer.count, outer.errors), (1, 1));
    assert_eq!((inner.count, inner.errors), (3, 1));
}

#[test]
fn an_error_field_fails_the_span() {
    let (engine, mock) = manual(Engine::builder());
    let windows = engine.subscribe(4);
    dispatcher::with_default(&dispatch(TracingLayer::new(&engine)), || {
        tracing::info_span!("tl.f", error = true).in_scope(|| ());
        tracing::info_span!("tl.f", error = false).in_scope(|| ());
        tracing::info_span!("tl.f", error = "disk full").in_scope(|| ());
        tracing::info_span!("tl.f", error = Empty).in_scope(|| ()); // never recorded
        let later = tracing::info_span!("tl.f", error = Empty, user = 7);
        later.in_scope(|| ());
        later.record("error", tracing::field::display("late"));
        drop(later);
        tracing::info_span!("tl.f", error.kind = "timeout").in_scope(|| ());
        tracing::info_span!("tl.f", error_kind = %"timeout").in_scope(|| ());
        // A kind the engine refuses (not a valid name) still fails the span.
        tracing::info_span!("tl.f", error.kind = "no such kind").in_scope(|| ());
        tracing::info_span!("tl.f", other = true).in_scope(|| ());
    });
    let f = totals(&engine, "tl.f");
    assert_eq!((f.count, f.errors), (9, 6));
    mock.advance(Duration::from_secs(2));
    engine.flush().unwrap();
    let w = windows.try_recv().expect("window 0 closed");
    let kinds: Vec<(&str, u64)> = w
        .op("tl.f")
        .unwrap()
        .error_kinds
        .iter()
        .map(|(k, n)| (&**k, *n))
        .collect();
    assert_eq!(kinds, [("timeout", 2)]);
}

#[test]
fn the_operations_sampling_rules_apply() {
    let (engine, _mock) = manual(
        Engine::builder()
            .rule("tl.counted.*", Rule::new().sampling(Sampling::CountOnly))
            .rule("tl.every", Rule::new().sampling(Sampling::Every(10))),
    );
    for timing in [Timing::Wall, Timing::Busy] {
        dispatcher::with_default(&dispatch(TracingLayer::new(&engine).timing(timing)), || {
            for i in 0..100 {
                tracing::info_span!("tl.counted.q", error = i % 10 == 0).in_scope(|| ());
                tracing::info_span!("tl.every").in_scope(|| ());
                tracing::info_span!("tl.plain").in_scope(|| ());
            }
        });
    }
    let counted = totals(&engine, "tl.counted.q");
    assert_eq!(
        (counted.count, counted.unsampled, counted.errors),
        (0, 200, 20)
    );
    let every = totals(&engine, "tl.every");
    assert_eq!((every.count, every.unsampled), (20, 180));
    let plain = totals(&engine, "tl.plain");
    assert_eq!((plain.count, plain.unsampled), (200, 0));
}

#[test]
fn slow_thresholds_see_the_spans_duration() {
    let (engine, mock) =
        manual(Engine::builder().rule("tl.slow", Rule::new().slow_threshold(2 * MS)));
    dispatcher::with_default(&dispatch(TracingLayer::new(&engine)), || {
        for ms in [1, 3, 5] {
            tracing::info_span!("tl.slow").in_scope(|| mock.advance(ms * MS));
        }
    });
    assert_eq!(totals(&engine, "tl.slow").slow, 2);
}

/// A span created, then entered twice with waits around, as an instrumented future is polled.
fn polled_span(engine: &Engine, mock: &MockClock, timing: Timing, name: &'static str) {
    let layer = TracingLayer::new(engine).timing(timing).name_field("op");
    dispatcher::with_default(&dispatch(layer), || {
        let span = tracing::info_span!("tl.polled", op = name);
        mock.advance(5 * MS); // created, not yet polled
        span.in_scope(|| mock.advance(2 * MS));
        mock.advance(3 * MS); // waiting
        {
            let _a = span.enter();
            let _b = span.enter(); // re-entered while entered: one interval
            mock.advance(MS);
        }
        mock.advance(4 * MS);
    });
}

#[test]
fn wall_time_runs_from_creation_to_close_and_busy_time_counts_entered_intervals() {
    let (engine, mock) = manual(Engine::builder());
    polled_span(&engine, &mock, Timing::Wall, "tl.wall");
    polled_span(&engine, &mock, Timing::Busy, "tl.busy");
    let wall = totals(&engine, "tl.wall");
    assert_eq!((wall.count, wall.max_ns), (1, 15_000_000));
    let busy = totals(&engine, "tl.busy");
    assert_eq!((busy.count, busy.max_ns), (1, 3_000_000));
}

#[test]
fn a_name_field_names_the_operation() {
    let (engine, mock) = manual(Engine::builder());
    let layer = TracingLayer::new(&engine).name_field("op");
    dispatcher::with_default(&dispatch(layer), || {
        let table = "users";
        tracing::info_span!("query", op = "db.select").in_scope(|| mock.advance(MS));
        tracing::info_span!("query", op = %format!("db.{table}")).in_scope(|| ());
        tracing::info_span!("query", op = Empty).in_scope(|| ()); // keeps its name
        tracing::info_span!("query").in_scope(|| ());
    });
    assert_eq!(totals(&engine, "db.select").max_ns, 1_000_000);
    assert_eq!(totals(&engine, "db.users").count, 1);
    assert_eq!(totals(&engine, "query").count, 2);
}

#[test]
fn a_span_may_be_entered_and_closed_on_other_threads() {
    let (engine, mock) = manual(Engine::builder());
    for timing in [Timing::Wall, Timing::Busy] {
        let d = dispatch(TracingLayer::new(&engine).timing(timing));
        let span = dispatcher::with_default(&d, || tracing::info_span!("tl.moved"));
        mock.advance(MS);
        let span = std::thread::scope(|s| {
            s.spawn(|| {
                dispatcher::with_default(&d, || {
                    span.in_scope(|| mock.advance(2 * MS));
                });
                span
            })
            .join()
            .unwrap()
        });
        mock.advance(MS);
        std::thread::spawn(move || drop(span)).join().unwrap();
    }
    let moved = totals(&engine, "tl.moved");
    assert_eq!(
        (moved.count, moved.min_ns, moved.max_ns),
        (2, 2_000_000, 4_000_000)
    );
}

#[test]
fn a_span_closed_by_a_panic_is_failed() {
    let (engine, _mock) = manual(Engine::builder());
    dispatcher::with_default(&dispatch(TracingLayer::new(&engine)), || {
        let r = std::panic::catch_unwind(|| {
            let _s = tracing::info_span!("tl.panics").entered();
            std::panic::resume_unwind(Box::new("injected"));
        });
        assert!(r.is_err());
    });
    let s = totals(&engine, "tl.panics");
    assert_eq!((s.count, s.errors), (1, 1));
}

#[test]
fn names_the_engine_refuses_are_counted_not_timed() {
    let (engine, _mock) = manual(Engine::builder().max_operations(3));
    let layer = TracingLayer::new(&engine).name_field("op");
    let probe = layer.clone();
    dispatcher::with_default(&dispatch(layer), || {
        tracing::info_span!("GET /users").in_scope(|| ());
        tracing::info_span!("ok.name", op = "not valid").in_scope(|| ());
        tracing::info_span!("ok.name", op = "9lives").in_scope(|| ());
        tracing::info_span!("ok.name").in_scope(|| tracing::error!("still fine"));
        for name in ["tl.a", "tl.b", "tl.c", "tl.d"] {
            tracing::info_span!("x", op = name).in_scope(|| ());
        }
    });
    engine.flush().unwrap();
    let snap = engine.snapshot();
    let timed: u64 = snap.totals.iter().map(|t| t.stats.calls()).sum();
    assert_eq!(timed + probe.refused_spans(), 8);
    assert_eq!(timed, 3, "the operation limit");
    // Only callsites without the name field register their span's name.
    assert!(snap.totals("x").is_none());
    assert_eq!(snap.totals("ok.name").unwrap().errors, 1);
    let refused = snap
        .counters
        .iter()
        .find(|c| &*c.name == "ringmeter_tracing_refused_spans")
        .unwrap();
    assert_eq!(refused.value, probe.refused_spans());
}

/// `n` as the hex of an id of `N` bytes (the last byte `n`, the first 0xab so it is not zero).
fn hex_id<const N: usize>(n: u8) -> ([u8; N], String) {
    let mut id = [0u8; N];
    id[0] = 0xab;
    id[N - 1] = n;
    let hex = id.iter().map(|b| format!("{b:02x}")).collect();
    (id, hex)
}

#[test]
fn the_exemplars_of_spans_with_ids_carry_them_to_otlp_and_openmetrics() {
    use ringmeter::export::otlp;
    use ringmeter::export::prom::Format;

    for timing in [Timing::Wall, Timing::Busy] {
        let (engine, mock) = manual(
            Engine::builder()
                .window(Duration::from_secs(1))
                .rule("tl.traced", Rule::new().exemplars(4)),
        );
        let windows = engine.subscribe(4);
        let layer = TracingLayer::new(&engine).timing(timing);
        let mut want = Vec::new();
        dispatcher::with_default(&dispatch(layer), || {
            // 5 ms with ids at creation; 4 ms with ids recorded later (`%` Display);
            // 3 ms without ids; 2 ms with only a trace id; 1 ms with ids.
            for (ms, ids) in [(5u8, 2), (4, 1), (3, 0), (2, 3), (1, 2)] {
                let (trace_id, trace_hex) = hex_id::<16>(ms);
                let (span_id, span_hex) = hex_id::<8>(ms);
                let span = match ids {
                    2 => tracing::info_span!(
                        "tl.traced",
                        trace_id = trace_hex.as_str(),
                        span_id = span_hex.as_str()
                    ),
                    _ => tracing::info_span!("tl.traced", trace_id = Empty, span_id = Empty),
                };
                if ids == 1 {
                    span.record("trace_id", tracing::field::display(&trace_hex));
                    span.record("span_id", tracing::field::display(&span_hex));
                }
                if ids == 3 {
                    span.record("trace_id", trace_hex.as_str());
                }
                span.in_scope(|| mock.advance(u32::from(ms) * MS));
                drop(span);
                let ids = (ids == 1 || ids == 2).then_some((trace_id, span_id));
                want.push((u64::from(ms) * 1_000_000, ids));
            }
        });
        // A plain call, as slow as the slowest span, on the same thread: no ids.
        engine.op("tl.traced").unwrap().record_ns(6_000_000);
        want.insert(0, (6_000_000, None));
        want.truncate(4);
        engine.flush().unwrap();
        mock.advance(Duration::from_secs(3));
        engine.flush().unwrap();
        let w = windows.try_recv().expect("a closed window");
        let slowest = &w.op("tl.traced").unwrap().slowest;
        let got: Vec<_> = slowest
            .iter()
            .map(|e| (e.duration_ns, e.trace.map(|t| (t.trace_id, t.span_id))))
            .collect();
        assert_eq!(got, want, "{timing:?}");

        // OTLP: the exemplars' trace_id and span_id bytes.
        let snap = engine.snapshot();
        let req = otlp::request(
            &otlp::resource("svc", &[]),
            &w,
            &snap.bucket_bounds_ns,
            &[],
            &[],
            0,
        );
        let metric = &req.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(otlp::proto::metrics::v1::metric::Data::Histogram(h)) = &metric.data else {
            panic!("not a histogram")
        };
        let ids: Vec<_> = h.data_points[0]
            .exemplars
            .iter()
            .map(|e| (e.trace_id.clone(), e.span_id.clone()))
            .collect();
        let want_ids: Vec<_> = want
            .iter()
            .map(|(_, ids)| ids.map_or((vec![], vec![]), |(t, s)| (t.to_vec(), s.to_vec())))
            .collect();
        assert_eq!(ids, want_ids);

        // OpenMetrics: the slowest call of the 5 ms bucket is the 5 ms span, with its ids.
        let text = String::from_utf8(engine.render_metrics(Format::OpenMetrics)).unwrap();
        let (_, trace_hex) = hex_id::<16>(5);
        let (_, span_hex) = hex_id::<8>(5);
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("ringmeter_latency_seconds_bucket{op=\"tl.traced\",le=\"0.005\"}")
            })
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains(&format!(
                " # {{trace_id=\"{trace_hex}\",span_id=\"{span_hex}\",thread_id="
            )),
            "{line}"
        );
    }
}
