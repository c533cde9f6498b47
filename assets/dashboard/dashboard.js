// ringmeter live dashboard: polls /api/snapshot once per window (schema in docs/dashboard.md),
// keeps the last N closed windows in the page (?windows=N, default 120) and draws, per
// operation, p50/p99/p99.9/max and calls/errors per window with uPlot. Alerts firing, the
// totals since start, and the process gauges when the snapshot carries them.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const keep = Math.min(Math.max(parseInt(params.get("windows") || "120", 10) || 120, 2), 3600);
  const LATENCY = [
    ["p50", "p50_ns", "#2b7bb9"],
    ["p99", "p99_ns", "#e08a00"],
    ["p99.9", "p999_ns", "#c0392b"],
    ["max", "max_ns", "#7d3c98"],
  ];
  const COUNTS = [
    ["calls", "#2e8b57"],
    ["errors", "#c0392b"],
  ];
  const windows = []; // {index, t (s), ops: Map name -> stats}
  const charts = new Map(); // name -> {latency: uPlot, counts: uPlot}
  let lastIndex = null;
  let periodMs = 1000;
  let token = null;
  const status = document.getElementById("status");
  const authForm = document.getElementById("auth");

  // The token: from the page's fragment (#token=…, never sent to the server) or this tab's
  // session storage; asked for when the server answers 401.
  try {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromHash) {
      sessionStorage.setItem("ringmeter-token", fromHash);
      history.replaceState(null, "", location.pathname + location.search);
    }
    token = sessionStorage.getItem("ringmeter-token");
  } catch (e) {
    token = null;
  }
  authForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    token = document.getElementById("token").value.trim();
    try { sessionStorage.setItem("ringmeter-token", token); } catch (e) { /* private mode */ }
    authForm.hidden = true;
    poll();
  });

  function fmtNs(ns) {
    if (ns === null || ns === undefined) return "–";
    if (ns < 1e3) return ns + " ns";
    if (ns < 1e6) return (ns / 1e3).toPrecision(3) + " µs";
    if (ns < 1e9) return (ns / 1e6).toPrecision(3) + " ms";
    return (ns / 1e9).toPrecision(3) + " s";
  }
  function calls(s) { return s.count + s.unsampled + s.dropped; }
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
  function setStatus(text, isError) { status.textContent = text; status.className = isError ? "error" : ""; }

  function chartWidth(el) { return Math.max(300, Math.floor(el.getBoundingClientRect().width) || 420); }

  function makeChart(el, title, series, yLabel) {
    const t = document.createElement("div");
    t.className = "chart-title";
    t.textContent = title;
    el.appendChild(t);
    const opts = {
      width: chartWidth(el),
      height: 180,
      series: [{}].concat(series.map(function (s) {
        return { label: s[0], stroke: s[s.length - 1], width: 1.5, spanGaps: false };
      })),
      axes: [{}, { label: yLabel, size: 60 }],
      scales: { x: { time: true } },
      legend: { live: false },
    };
    const data = [[]].concat(series.map(function () { return []; }));
    return new uPlot(opts, data, el);
  }

  function opCard(name) {
    let c = charts.get(name);
    if (c) return c;
    const card = document.createElement("div");
    card.className = "op";
    card.dataset.op = name;
    const h = document.createElement("h3");
    h.textContent = name;
    card.appendChild(h);
    const row = document.createElement("div");
    row.className = "charts";
    const lat = document.createElement("div");
    lat.className = "chart latency";
    lat.dataset.series = String(LATENCY.length);
    const cnt = document.createElement("div");
    cnt.className = "chart counts";
    cnt.dataset.series = String(COUNTS.length);
    row.appendChild(lat);
    row.appendChild(cnt);
    card.appendChild(row);
    document.getElementById("ops").appendChild(card);
    c = {
      latency: makeChart(lat, "latency per window (ms)", LATENCY, "ms"),
      counts: makeChart(cnt, "calls and errors per window", COUNTS, "calls"),
    };
    charts.set(name, c);
    return c;
  }

  function redraw() {
    const xs = windows.map(function (w) { return w.t; });
    document.getElementById("window-count").textContent = String(windows.length);
    const names = new Set();
    windows.forEach(function (w) { w.ops.forEach(function (_, n) { names.add(n); }); });
    Array.from(names).sort().forEach(function (name) {
      const c = opCard(name);
      const lat = [xs].concat(LATENCY.map(function (l) {
        return windows.map(function (w) {
          const s = w.ops.get(name);
          return s && s.count > 0 ? s[l[1]] / 1e6 : null;
        });
      }));
      const cnt = [xs,
        windows.map(function (w) { const s = w.ops.get(name); return s ? calls(s) : 0; }),
        windows.map(function (w) { const s = w.ops.get(name); return s ? s.errors : 0; })];
      c.latency.setData(lat);
      c.counts.setData(cnt);
    });
  }

  function renderAlerts(alerts) {
    const table = document.getElementById("alerts");
    const body = table.querySelector("tbody");
    body.textContent = "";
    const firing = (alerts || []).filter(function (a) { return a.state === "firing"; });
    firing.forEach(function (a) {
      const tr = document.createElement("tr");
      cell(tr, a.rule);
      cell(tr, a.operation);
      cell(tr, a.condition);
      cell(tr, a.value === null ? "–" : String(+a.value.toPrecision(4)));
      cell(tr, String(+a.threshold.toPrecision(4)));
      cell(tr, String(a.windows_breached));
      cell(tr, new Date(a.since_unix_ns / 1e6).toLocaleTimeString());
      body.appendChild(tr);
    });
    table.hidden = firing.length === 0;
    document.getElementById("no-alerts").hidden = firing.length !== 0;
  }

  // Performance budgets: shown only when the snapshot carries a burn (a budget rule with a
  // recorded call in its period); a burn above 1 means the allowance is used up.
  function renderBudgets(budgets) {
    const section = document.getElementById("budgets-section");
    const body = document.querySelector("#budgets tbody");
    body.textContent = "";
    (budgets || []).forEach(function (b) {
      const tr = document.createElement("tr");
      cell(tr, b.rule);
      cell(tr, b.operation);
      cell(tr, "p" + String(+(b.quantile * 100).toPrecision(4)) + " ≤ " + fmtNs(b.limit_ns));
      cell(tr, String(b.calls));
      cell(tr, String(b.over));
      cell(tr, String(+b.burn.toPrecision(3)));
      if (b.burn > 1) tr.className = "over";
      body.appendChild(tr);
    });
    section.hidden = !budgets || budgets.length === 0;
  }

  function renderTotals(totals) {
    const body = document.querySelector("#totals tbody");
    body.textContent = "";
    (totals || []).forEach(function (t) {
      const tr = document.createElement("tr");
      cell(tr, t.name);
      cell(tr, String(calls(t.stats)));
      cell(tr, String(t.stats.errors));
      cell(tr, fmtNs(t.stats.p50_ns));
      cell(tr, fmtNs(t.stats.p99_ns));
      cell(tr, fmtNs(t.stats.p999_ns));
      cell(tr, fmtNs(t.stats.max_ns));
      body.appendChild(tr);
    });
  }

  // The process gauges: shown only when the snapshot has a `process` field; every scalar in
  // it (nested objects flattened to dotted keys) as one row.
  function renderProcess(process) {
    const section = document.getElementById("process-section");
    if (process === undefined || process === null) { section.hidden = true; return; }
    const body = document.querySelector("#process tbody");
    body.textContent = "";
    (function walk(prefix, v) {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        Object.keys(v).forEach(function (k) { walk(prefix ? prefix + "." + k : k, v[k]); });
        return;
      }
      const tr = document.createElement("tr");
      cell(tr, prefix);
      cell(tr, Array.isArray(v) ? JSON.stringify(v) : String(v));
      body.appendChild(tr);
    })("", process);
    section.hidden = false;
  }

  function ingest(snap) {
    const w = snap.last_window;
    if (w && w.index !== lastIndex) {
      lastIndex = w.index;
      periodMs = Math.min(Math.max(w.length_ns / 1e6, 250), 10000);
      const ops = new Map();
      w.ops.forEach(function (o) { ops.set(o.name, o.stats); });
      windows.push({ index: w.index, t: (w.start_unix_ns + w.length_ns) / 1e9, ops: ops });
      while (windows.length > keep) windows.shift();
      redraw();
    }
    renderAlerts(snap.alerts);
    renderBudgets(snap.budgets);
    renderTotals(snap.totals);
    renderProcess(snap.process);
    setStatus("window #" + (w ? w.index : "–") + " · " + snap.windows_closed +
      " windows closed · snapshot " + snap.sequence + " · updated " +
      new Date().toLocaleTimeString(), false);
  }

  let timer = null;
  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, periodMs);
  }

  function poll() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    fetch("api/snapshot", { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {
          authForm.hidden = false;
          document.getElementById("auth-message").textContent =
            token ? "the token was refused" : "this server requires a token";
          setStatus("waiting for a bearer token", true);
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (snap) {
        if (snap) { ingest(snap); schedule(); }
      })
      .catch(function (e) {
        setStatus("cannot read the snapshot (" + e.message + "); retrying", true);
        schedule();
      });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (c) {
      [c.latency, c.counts].forEach(function (u) {
        u.setSize({ width: chartWidth(u.root.parentNode), height: 180 });
      });
    });
  });
  poll();
})();
