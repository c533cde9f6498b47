//! `ringmeter report`: the HTML page loads in headless Chromium without console errors, draws
//! every chart with its series, and carries the exact percentiles of the merged histograms;
//! bad input fails as in the other subcommands.

use std::path::{Path, PathBuf};

use ringmeter::export::set_percentiles;
use ringmeter::hdrhistogram::Histogram;
use ringmeter::log::{Reader, Record};
use ringmeter::OpStats;
use serde_json::Value;

use crate::util::chromium;
use crate::util::cli::{fails, ok, ringmeter, write_log, TempDir};

fn path(d: &TempDir) -> &str {
    d.path().to_str().unwrap()
}

/// Where screenshots are kept: the build's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The JSON the page embeds.
fn data(html: &str) -> Value {
    let open = "<script id=\"report-data\" type=\"application/json\">";
    let at = html.find(open).expect("the data block") + open.len();
    let end = at + html[at..].find("</script>").unwrap();
    serde_json::from_str(&html[at..end]).unwrap()
}

/// Every operation's histograms and statistics merged with `hdrhistogram` itself.
fn merged_by_hand(dir: &Path) -> Vec<(String, OpStats)> {
    let mut ops: std::collections::BTreeMap<String, (Histogram<u64>, OpStats)> = Default::default();
    for rec in Reader::open(dir).unwrap() {
        let Record::Window(w) = rec.unwrap() else {
            continue;
        };
        let (h, s) = ops
            .entry(w.op.to_string())
            .or_insert_with(|| (Histogram::new_from(&w.histogram), OpStats::default()));
        h.add(&w.histogram).unwrap();
        if s.count == 0 {
            (s.min_ns, s.max_ns) = (w.stats.min_ns, w.stats.max_ns);
        }
        s.count += w.stats.count;
        s.min_ns = s.min_ns.min(w.stats.min_ns);
        s.max_ns = s.max_ns.max(w.stats.max_ns);
    }
    ops.into_iter()
        .map(|(op, (h, mut s))| {
            set_percentiles(&mut s, &h);
            (op, s)
        })
        .collect()
}

#[test]
fn the_report_holds_the_exact_percentiles_of_the_merged_histograms() {
    let dir = TempDir::new("report-exact");
    write_log(dir.path(), 4);
    let html = ok(&["report", path(&dir)]);
    let data = data(&html);
    let ops = data["ops"].as_array().unwrap();
    let want = merged_by_hand(dir.path());
    assert_eq!(ops.len(), want.len());
    for (entry, (op, s)) in ops.iter().zip(&want) {
        assert_eq!(entry[0], op.as_str());
        let d = &entry[1];
        let t = &d["total"];
        assert_eq!(t["count"], s.count, "{op}");
        for (k, v) in [
            ("p50_ns", s.p50_ns),
            ("p90_ns", s.p90_ns),
            ("p95_ns", s.p95_ns),
            ("p99_ns", s.p99_ns),
            ("p999_ns", s.p999_ns),
            ("min_ns", s.min_ns),
            ("max_ns", s.max_ns),
        ] {
            assert_eq!(t[k], v, "{op} {k}");
        }
        // One point per window, and the table row of the totals.
        assert_eq!(d["t"].as_array().unwrap().len(), 4);
        assert!(html.contains(&format!("<td>{}</td><td>{}</td>", s.p50_ns, s.p90_ns)));
    }
    // The page needs no network: no external script, stylesheet or image.
    for external in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn the_report_loads_in_chromium_with_every_chart() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let dir = TempDir::new("report-chromium");
    let out = TempDir::new("report-chromium-out");
    write_log(dir.path(), 6);
    let file = out.join("report.html");
    ok(&["report", path(&dir), "-o", file.to_str().unwrap()]);
    let shot = target_dir().join("report-screenshot.png");
    let page = chromium::load(&chromium, &format!("file://{}", file.display()), &shot);
    assert!(page.console_errors.is_empty(), "{:?}", page.console_errors);
    // Two operations, four charts each, each with the series it was given.
    let charts: Vec<&str> = page.dom.split("class=\"chart\"").skip(1).collect();
    assert_eq!(charts.len(), 8, "{}", page.dom.len());
    let attr = |s: &str, name: &str| -> u64 {
        let pat = format!("{name}=\"");
        let at = s.find(&pat).unwrap() + pat.len();
        s[at..].split('"').next().unwrap().parse().unwrap()
    };
    let mut series = Vec::new();
    for c in &charts {
        let (want, drawn) = (attr(c, "data-series"), attr(c, "data-drawn"));
        assert_eq!(want, drawn);
        // uPlot's legend: a row per series, the x series included.
        let chart = c.split("class=\"chart\"").next().unwrap();
        assert_eq!(chart.matches("class=\"u-series").count() as u64, want + 1);
        series.push(want);
    }
    assert_eq!(series, [5, 3, 1, 1, 5, 3, 1, 1]);
    assert!(page.dom.contains("data-charts=\"8\""));
    assert!(page.dom.contains("<canvas"));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn the_chromium_driver_reports_console_errors() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let out = TempDir::new("chromium-errors");
    let file = out.join("page.html");
    std::fs::write(
        &file,
        "<html><body><p id=x>hi</p><script>console.log('fine'); console.error('bad', 1);\
         missing();</script></body></html>",
    )
    .unwrap();
    let shot = out.join("page.png");
    let page = chromium::load(&chromium, &format!("file://{}", file.display()), &shot);
    assert!(page.dom.contains("<p id=\"x\">hi</p>"));
    assert_eq!(page.console_errors.len(), 2, "{:?}", page.console_errors);
    assert!(page.console_errors[0].ends_with("bad 1"), "{:?}", page.console_errors);
    assert!(page.console_errors[1].contains("missing is not defined"));
}

#[test]
fn bad_input_fails_as_in_the_other_subcommands() {
    let dir = TempDir::new("report-bad");
    let out = TempDir::new("report-bad-out");
    write_log(dir.path(), 2);
    // Nothing selected: exit code 1, nothing written, `-o` left empty.
    let file = out.join("empty.html");
    let args = [
        "report",
        path(&dir),
        "--until",
        "2000-01-01T00:00:00Z",
        "-o",
        file.to_str().unwrap(),
    ];
    let err = fails(&args, 1);
    assert!(err.contains("no window of"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap().len(), 0);
    let o = ringmeter(&["report", path(&dir), "--until", "2000-01-01T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    // An output that cannot be created, or inside the log directory.
    let err = fails(&["report", path(&dir), "-o", "/nonexistent/dir/r.html"], 1);
    assert!(
        err.contains("cannot create /nonexistent/dir/r.html"),
        "{err}"
    );
    let inside = dir.join("r.html");
    let err = fails(&["report", path(&dir), "-o", inside.to_str().unwrap()], 2);
    assert!(err.contains("inside the log directory"), "{err}");
    // A pattern matching nothing, a missing log.
    fails(&["report", path(&dir), "--op", "nope.*"], 2);
    fails(&["report", "/nonexistent/log"], 1);
}
