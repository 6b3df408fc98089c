/* stream-edits operator dashboard: polls stats/ (same origin) every 2 s and draws everything
 * itself (DOM text and inline SVG); no library, nothing loaded from anywhere else. Every value
 * is written with textContent, never parsed as HTML. Tolerant of missing keys: what /stats/
 * does not send is shown as "–". */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var TIMEOUT_MS = 4000;
  var WINDOW_S = 15 * 60;
  var SVG_NS = "http://www.w3.org/2000/svg";
  var STATUS_ORDER = ["accept", "deny", "void"];
  var REASONS = {
    broker_unreachable: "broker unreachable",
    recovering: "recovering state",
    no_assignment: "no partitions assigned",
    crashed: "crashed"
  };
  var integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  var decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  var axis = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  var polls = 0;
  var lastOk = null; // Date of the last stats received
  var disconnectedSince = null;

  function $(id) { return document.getElementById(id); }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : {}; }

  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
    return el;
  }

  function setCount(id, value) {
    var el = setText(id, isNum(value) ? integer.format(value) : "–");
    if (el) el.dataset.value = isNum(value) ? String(value) : "";
  }

  function setMs(id, value) {
    var el = setText(id, isNum(value) ? formatMs(value) : "–");
    if (el) el.dataset.value = isNum(value) ? String(value) : "";
  }

  function formatMs(ms) { return ms >= 100 ? integer.format(ms) : decimal.format(ms); }

  function clockTime(date) {
    return date.toLocaleTimeString("en-GB", { hour12: false });
  }

  function duration(seconds) {
    if (!isNum(seconds)) return "–";
    var s = Math.max(0, Math.floor(seconds));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + "d " + h + "h " + m + "m";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (sec < 10 ? "0" : "") + sec + "s";
    return sec + "s";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- server time: the stats' own clock, so a skewed browser clock does not shift the charts
  function serverNow(stats) {
    var started = Date.parse(stats.started_at);
    if (isFinite(started) && isNum(stats.uptime_s)) return started / 1000 + stats.uptime_s;
    return Date.now() / 1000;
  }

  // ---- header: identity, readiness, uptime
  function renderHeader(stats) {
    setText("app-id", stats.app_id || "–");
    setText("rules-version", stats.rules_version || "–");
    setText("guarantee", stats.processing_guarantee || "–");
    setText("uptime", duration(stats.uptime_s));
    var started = Date.parse(stats.started_at);
    setText("started-at", isFinite(started) ? new Date(started).toLocaleString("en-GB", { hour12: false }) : "–");

    var box = $("readiness");
    var reasonsList = $("readiness-reasons");
    var health = stats.health;
    var label, state, reasons = [];
    if (health && typeof health.ready === "boolean") {
      state = health.ready ? "ready" : "not-ready";
      label = health.ready ? "READY" : "NOT READY";
      reasons = Array.isArray(health.reasons) ? health.reasons : [];
    } else {
      state = "unknown";
      label = "readiness unknown";
    }
    box.className = "readiness " + state;
    box.dataset.ready = state === "unknown" ? "" : String(state === "ready");
    setText("readiness-label", label);
    reasonsList.replaceChildren.apply(reasonsList, reasons.map(function (r) {
      var item = el("li", "", REASONS[r] || String(r));
      item.dataset.reason = String(r);
      return item;
    }));
    document.title = (state === "unknown" ? "" : label + " · ") + "stream-edits " + (stats.app_id || "");
  }

  // ---- tiles
  function renderTotals(stats) {
    setCount("total-events", stats.events);
    setCount("total-forwarded", stats.forwarded);
    setCount("total-replayed", stats.replayed);
    setCount("total-decisions", stats.decisions);
    setCount("total-revisions", stats.revisions);
    setCount("total-dead-letters", stats.dead_letters);
    setCount("total-conflicts", stats.conflicts);
    setCount("total-batches", stats.batches);
    setCount("total-redeliveries", stats.redeliveries);
    setCount("total-expired-keys", stats.expired_keys);
    $("total-dead-letters").parentNode.classList.toggle("warn", isNum(stats.dead_letters) && stats.dead_letters > 0);

    var latency = obj(stats.latency_ms);
    setMs("latency-p50", latency.p50);
    setMs("latency-p95", latency.p95);
    setMs("latency-p99", latency.p99);
    setCount("latency-count", latency.count);

    var days = obj(stats.stream_day_by_partition);
    var parts = Object.keys(days).sort(function (a, b) { return Number(a) - Number(b); });
    setText("stream-days", parts.length ? parts.map(function (p) { return "p" + p + " " + days[p]; }).join(", ") : "–");
  }

  // ---- lag per partition
  function renderLag(stats) {
    var body = $("lag-rows");
    var lag = Array.isArray(stats.lag) ? stats.lag.slice() : null;
    if (!lag || !lag.length) {
      var cell = el("td", "empty", lag ? "none reported yet" : "no data");
      cell.colSpan = 4;
      var row = el("tr");
      row.appendChild(cell);
      body.replaceChildren(row);
      setCount("lag-total", null);
      setText("lag-max-seconds", "–");
      return;
    }
    var prefix = (stats.app_id || "") + "-";
    var internal = function (topic) { return stats.app_id && String(topic).indexOf(prefix) === 0 ? 1 : 0; };
    lag.sort(function (a, b) { // the input topic first, then the worker's internal topics
      return internal(a.topic) - internal(b.topic) ||
        String(a.topic).localeCompare(String(b.topic)) || (a.partition - b.partition);
    });
    var total = 0, worst = 0;
    body.replaceChildren.apply(body, lag.map(function (entry) {
      var records = isNum(entry.records) ? entry.records : 0;
      var seconds = isNum(entry.seconds) ? entry.seconds : 0;
      total += records;
      worst = Math.max(worst, seconds);
      var tr = el("tr", seconds >= 300 ? "bad" : seconds >= 30 ? "warn" : "");
      var name = String(entry.topic);
      var topic = el("td", "topic", internal(name) ? name.slice(prefix.length) : name);
      topic.title = name;
      tr.appendChild(topic);
      tr.appendChild(el("td", "n", String(entry.partition)));
      tr.appendChild(el("td", "n", integer.format(records)));
      tr.appendChild(el("td", "n secs", decimal.format(seconds)));
      return tr;
    }));
    setCount("lag-total", total);
    setText("lag-max-seconds", duration(worst));
    var tile = $("lag-total").parentNode;
    tile.classList.toggle("alert", worst >= 300);
    tile.classList.toggle("warn", worst >= 30 && worst < 300);
  }

  // ---- horizontal bars (counts by status, edit code, dead-letter reason)
  function renderBars(id, counts, order, fillClass, emptyText) {
    var box = $(id);
    var names = Object.keys(counts).filter(function (k) { return isNum(counts[k]); });
    names.sort(function (a, b) {
      var ia = order.indexOf(a), ib = order.indexOf(b);
      if (ia !== -1 || ib !== -1) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
      return counts[b] - counts[a] || a.localeCompare(b);
    });
    if (!names.length) {
      box.replaceChildren(el("div", "empty", emptyText));
      return;
    }
    var max = Math.max.apply(null, names.map(function (n) { return counts[n]; }).concat([1]));
    box.replaceChildren.apply(box, names.map(function (name) {
      var row = el("div", "bar");
      row.dataset.key = name;
      row.dataset.value = String(counts[name]);
      var label = el("span", "label", name);
      label.title = name;
      var track = el("span", "track");
      var fill = el("span", "fill " + fillClass(name));
      fill.style.width = (100 * counts[name] / max).toFixed(1) + "%";
      track.appendChild(fill);
      row.appendChild(label);
      row.appendChild(track);
      row.appendChild(el("span", "count", integer.format(counts[name])));
      return row;
    }));
  }

  function renderBreakdowns(stats) {
    renderBars("by-status", obj(stats.decisions_by_status), STATUS_ORDER,
      function (name) { return STATUS_ORDER.indexOf(name) !== -1 ? name : ""; }, "none yet");
    renderBars("by-edit", obj(stats.decisions_by_edit), [], function () { return ""; }, "none yet");
    renderBars("by-reason", obj(stats.dead_letters_by_reason), [], function () { return "dead"; }, "none");
  }

  // ---- timeline: complete buckets only, gaps filled (an absent bucket had no lines)
  function timeline(stats, now) {
    var tl = stats.timeline;
    if (!tl || !Array.isArray(tl.points)) return null;
    var bucket = isNum(tl.bucket_s) && tl.bucket_s > 0 ? tl.bucket_s : 5;
    var byStart = {};
    var first = null;
    tl.points.forEach(function (p) {
      if (!p || !isNum(p.t)) return;
      byStart[p.t] = p;
      if (first === null || p.t < first) first = p.t;
    });
    var started = Date.parse(stats.started_at);
    var startedAt = isFinite(started) ? started / 1000 : null;
    if (first === null && startedAt === null) return { bucket: bucket, rows: [] };
    // bucket starts are anchor + k * bucket (the server's own phase)
    var anchor = first !== null ? first : Math.floor(startedAt / bucket) * bucket;
    var align = function (v) { return anchor + Math.floor((v - anchor) / bucket) * bucket; };
    var lastComplete = align(now) - bucket; // the bucket in progress is left out
    var from = first !== null ? first : Infinity;
    if (startedAt !== null) from = Math.min(from, align(startedAt)); // idle since the start: zeros
    from = Math.max(from, align(now - WINDOW_S) + bucket);
    var rows = [];
    for (var t = from; t <= lastComplete; t += bucket) {
      var p = byStart[t] || {};
      rows.push({
        t: t,
        rate: (isNum(p.lines) ? p.lines : 0) / bucket,
        p50: isNum(p.p50_ms) ? p.p50_ms : null,
        p95: isNum(p.p95_ms) ? p.p95_ms : null,
        p99: isNum(p.p99_ms) ? p.p99_ms : null
      });
    }
    return { bucket: bucket, rows: rows };
  }

  // A step of 1, 2, 2.5 or 5 times a power of ten giving about four intervals up to `value`.
  function niceStep(value) {
    if (!(value > 0)) return 0.25;
    var rough = value / 4;
    var exp = Math.pow(10, Math.floor(Math.log10(rough)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * exp >= rough) return steps[i] * exp;
    return 10 * exp;
  }

  // A line chart over [x0, x1] (epoch seconds): grid, axis labels, one path per series (broken
  // at nulls; a point alone between gaps is a dot), an optional area under the first series.
  function drawChart(node, x0, x1, series, options) {
    var W = 600, H = 250, L = 52, R = 10, T = 10, B = 24;
    var values = [];
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] !== null) values.push(p[1]); }); });
    var x = function (t) { return L + (W - L - R) * (t - x0) / (x1 - x0); };
    var y, ticks = [];
    if (options.log) { // decades: a stall of seconds and a p50 of milliseconds both stay readable
      var positive = values.filter(function (v) { return v > 0; });
      var lo = Math.max(-1, Math.floor(Math.log10(positive.length ? Math.min.apply(null, positive) : 1)));
      var hi = Math.ceil(Math.log10(positive.length ? Math.max.apply(null, positive) : 10));
      if (hi <= lo) hi = lo + 1;
      y = function (v) {
        var e = Math.log10(Math.max(v, Math.pow(10, lo)));
        return T + (H - T - B) * (1 - (e - lo) / (hi - lo));
      };
      for (var e = lo; e <= hi; e++) ticks.push(Math.pow(10, e));
    } else {
      var top = Math.max.apply(null, values.concat([options.minMax || 1]));
      var step = niceStep(top);
      var yMax = Math.ceil(top / step - 1e-9) * step;
      y = function (v) { return T + (H - T - B) * (1 - v / yMax); };
      for (var k = 0; k * step <= yMax + step / 2; k++) ticks.push(k * step);
    }
    var parts = [];
    ticks.forEach(function (v) {
      parts.push(svg("line", { "class": "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      parts.push(svg("text", { "class": "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" },
        axis.format(v)));
    });
    var tick = Math.ceil(x0 / 300) * 300; // every 5 minutes, on the minute
    for (; tick <= x1; tick += 300) {
      parts.push(svg("line", { "class": "grid", x1: x(tick), x2: x(tick), y1: T, y2: H - B }));
      parts.push(svg("text", { "class": "axis", x: x(tick), y: H - 6, "text-anchor": "middle" },
        new Date(tick * 1000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false })));
    }
    if (!values.length) {
      parts.push(svg("text", { "class": "empty", x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle" },
        options.emptyText));
    }
    series.forEach(function (s, index) {
      var d = "", run = [];
      var flush = function () {
        if (run.length === 1) parts.push(svg("circle", { "class": s.cls, cx: run[0][0], cy: run[0][1], r: 2.5 }));
        run = [];
      };
      s.points.forEach(function (p) {
        if (p[1] === null) { flush(); return; }
        var px = x(p[0]).toFixed(1), py = y(p[1]).toFixed(1);
        d += (run.length ? "L" : "M") + px + " " + py;
        run.push([px, py]);
      });
      flush();
      if (!d) return;
      if (options.area && index === 0) {
        var pts = s.points.filter(function (p) { return p[1] !== null; });
        var area = d + "L" + x(pts[pts.length - 1][0]).toFixed(1) + " " + y(0) +
                   "L" + x(pts[0][0]).toFixed(1) + " " + y(0) + "Z";
        parts.unshift(svg("path", { "class": "area", d: area }));
      }
      parts.push(svg("path", { "class": "series " + s.cls, d: d, "data-series": s.name }));
    });
    node.replaceChildren.apply(node, parts);
  }

  function renderCharts(stats) {
    var now = serverNow(stats);
    var tl = timeline(stats, now);
    var x0 = now - WINDOW_S, x1 = now;
    var rows = tl ? tl.rows : [];
    var chart = $("chart-throughput");
    var lines = rows.map(function (r) { return [r.t + (tl ? tl.bucket : 0), r.rate]; });
    drawChart(chart, x0, x1, [{ name: "lines", cls: "s-lines", points: lines }],
      { area: true, minMax: 1, emptyText: tl ? "no complete bucket yet" : "no timeline in /stats/" });
    var total = rows.reduce(function (sum, r) { return sum + r.rate * (tl ? tl.bucket : 0); }, 0);
    chart.dataset.points = String(rows.length);
    chart.dataset.lines = String(Math.round(total));
    chart.dataset.lastT = rows.length ? String(rows[rows.length - 1].t) : "";

    var latency = $("chart-latency");
    var pick = function (key) { return rows.map(function (r) { return [r.t + tl.bucket, r[key]]; }); };
    drawChart(latency, x0, x1, tl ? [
      { name: "p50", cls: "s-p50", points: pick("p50") },
      { name: "p95", cls: "s-p95", points: pick("p95") },
      { name: "p99", cls: "s-p99", points: pick("p99") }
    ] : [], { log: true, emptyText: tl ? "no lines decided in the window" : "no timeline in /stats/" });
    latency.dataset.points = String(rows.filter(function (r) { return r.p99 !== null; }).length);

    // throughput now: the last complete bucket; the note gives the last minute's average
    if (tl && rows.length) {
      var last = rows[rows.length - 1];
      var minute = rows.slice(-Math.max(1, Math.round(60 / tl.bucket)));
      var avg = minute.reduce(function (s, r) { return s + r.rate; }, 0) / minute.length;
      setText("throughput-now", decimal.format(last.rate)).dataset.value = String(last.rate);
      setText("throughput-note", "last " + tl.bucket + " s · 1 min avg " + decimal.format(avg));
    } else {
      setText("throughput-now", "–").dataset.value = "";
      setText("throughput-note", tl ? "no complete bucket yet" : "no timeline in /stats/");
    }
  }

  function render(stats) {
    renderHeader(stats);
    renderTotals(stats);
    renderLag(stats);
    renderBreakdowns(stats);
    renderCharts(stats);
  }

  // ---- connection state and the clock of the last update
  function showAge() {
    if (!lastOk) return;
    var age = Math.round((Date.now() - lastOk.getTime()) / 1000);
    setText("last-updated-age", age >= 3 ? "(" + duration(age) + " ago)" : "");
  }

  function connected() {
    polls += 1;
    lastOk = new Date();
    disconnectedSince = null;
    document.body.dataset.state = "connected";
    document.body.dataset.polls = String(polls);
    $("disconnected-banner").hidden = true;
    setText("connection", "live · every " + POLL_MS / 1000 + " s");
    setText("last-updated", clockTime(lastOk));
    showAge();
  }

  function disconnected(reason) {
    if (!disconnectedSince) disconnectedSince = new Date();
    document.body.dataset.state = "disconnected";
    $("disconnected-banner").hidden = false;
    setText("disconnected-reason", "stats/ cannot be reached since " + clockTime(disconnectedSince) + " (" + reason + ")");
    setText("connection", "DISCONNECTED");
    showAge();
  }

  function poll() {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    fetch("stats/", { cache: "no-store", signal: controller.signal, headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (stats) {
        render(obj(stats));
        connected();
      })
      .catch(function (error) {
        disconnected(error && error.name === "AbortError" ? "no answer in " + TIMEOUT_MS / 1000 + " s"
                                                          : String(error && error.message || error));
      })
      .then(function () {
        clearTimeout(timer);
        setTimeout(poll, POLL_MS);
      });
  }

  function start() {
    setInterval(showAge, 1000);
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
