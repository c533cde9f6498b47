// Draws the charts of a ringmeter report from the JSON in #report-data with uPlot.
// Each chart's element says how many series it should draw (data-series) and, once drawn,
// how many it drew (data-drawn).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var root = document.getElementById("ops");
  var width = Math.max(480, Math.min(900, window.innerWidth - 64));
  // A latency in nanoseconds, in the unit that suits it.
  var dur = function (ns) {
    if (ns == null) { return ""; }
    var units = [[1e9, "s"], [1e6, "ms"], [1e3, "\u00b5s"], [1, "ns"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(ns) >= units[i][0] || i === units.length - 1) {
        return +(ns / units[i][0]).toPrecision(3) + " " + units[i][1];
      }
    }
    return "";
  };
  var durAxis = { label: "latency", size: 70,
                  values: function (u, vals) { return vals.map(dur); } };
  var colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

  function chart(section, kind, title, opts, columns) {
    var el = document.createElement("div");
    el.className = "chart";
    el.dataset.kind = kind;
    el.dataset.series = String(columns.length - 1);
    section.appendChild(el);
    opts.title = title;
    opts.width = width;
    opts.height = 240;
    var u = new uPlot(opts, columns, el);
    el.dataset.drawn = String(u.series.length - 1);
    return u;
  }

  function series(label, i, extra) {
    var s = { label: label, stroke: colors[i % colors.length], width: 1.5 };
    for (var k in extra || {}) { s[k] = extra[k]; }
    return s;
  }

  data.ops.forEach(function (entry) {
    var op = entry[0], d = entry[1];
    var section = document.createElement("section");
    section.id = "op-" + op;
    var h = document.createElement("h2");
    h.textContent = op + (d.point_s ? " (" + d.point_s + " s per point)" : "");
    section.appendChild(h);
    var charts = document.createElement("div");
    charts.className = "charts";
    section.appendChild(charts);
    root.appendChild(section);

    var lat = [d.t, d.p50, d.p90, d.p99, d.p999, d.max];
    var v = { value: function (u, x) { return dur(x); } };
    chart(charts, "latency", op + ": latency over time", {
      series: [{}, series("p50", 0, v), series("p90", 1, v), series("p99", 2, v),
               series("p99.9", 3, v), series("max", 4, v)],
      axes: [{}, durAxis]
    }, lat);

    chart(charts, "calls", op + ": calls and errors per point", {
      series: [{}, series("calls", 0), series("errors", 3),
               series("error %", 4, { scale: "pct" })],
      axes: [{}, { label: "calls" }, { side: 1, scale: "pct", label: "error %",
                                       grid: { show: false } }]
    }, [d.t, d.calls, d.errors, d.error_rate]);

    chart(charts, "slow", op + ": slow calls per point", {
      series: [{}, series("slow", 3)],
      axes: [{}, { label: "calls" }]
    }, [d.t, d.slow]);

    chart(charts, "percentiles", op + ": latency by percentile over the range", {
      scales: { x: { time: false, distr: 3, log: 10, range: function (u, min, max) {
        return [1, Math.pow(10, Math.max(1, Math.ceil(Math.log10(max || 10))))]; } } },
      series: [{ label: "percentile", value: function (u, v) {
                 return v == null ? "" : (100 * (1 - 1 / v)).toPrecision(6) + "%"; } },
               series("latency", 0, v)],
      axes: [{ label: "percentile", values: function (u, vals) {
                 // Labels at the powers of ten only: 0%, 90%, 99%, 99.9%, ...
                 return vals.map(function (v) {
                   if (v == null || v < 1) { return ""; }
                   var k = Math.round(Math.log10(v));
                   if (Math.abs(Math.log10(v) - k) > 1e-9) { return ""; }
                   return (100 - 100 / Math.pow(10, k)).toFixed(Math.max(0, k - 2)) + "%";
                 }); } },
             durAxis]
    }, [d.pct_x, d.pct_v]);
  });
  document.body.dataset.charts = String(document.querySelectorAll(".chart").length);
})();
