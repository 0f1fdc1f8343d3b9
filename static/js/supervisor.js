// Supervisor dashboards: every .report section fetches /supervisor/api/<name>, draws its
// chart (Chart.js) and its table from the same JSON, and offers the same numbers as CSV.
// Live: message.sentiment / survey.answered refresh the affected reports, sentiment.alert
// feeds the alert list. Customer text is only ever inserted with textContent.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("sv-config").textContent);
  const t = cfg.i18n;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const charts = {};
  const data = {};

  // Okabe-Ito colours (safe for the common colour-vision deficiencies) plus a pattern per
  // series, so no meaning rests on colour alone.
  const OKABE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const FIXED = {negative: ["#D55E00", "diag"], neutral: ["#999999", "dots"], positive: ["#0072B2", "solid"],
                 avg_score: ["#000000", "solid"], previous: ["#999999", "dots"], current: ["#D55E00", "diag"],
                 csat: ["#0072B2", "solid"], nps: ["#E69F00", "diag"], ces: ["#009E73", "dots"]};
  const KINDS = ["solid", "diag", "dots", "cross"];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(str, vars) { return str.replace(/%\((\w+)\)s/g, (_, k) => vars[k]); }
  function timeText(iso) {
    try { return new Date(iso).toLocaleString(document.documentElement.lang || "ja", {timeZone: cfg.timeZone, dateStyle: "short", timeStyle: "short"}); }
    catch (e) { return iso; }
  }
  // Time buckets arrive as sortable keys in the dashboard's zone ("2026-11-19", "2026-11-19 14:00");
  // the axis words them in the page's language (11/19, 14時 / Nov 19, 2 PM), the tooltip and the
  // table in full. The keys are local already, so they are read and formatted as UTC: no zone
  // moves them a second time.
  const lang = document.documentElement.lang || "ja";
  const BUCKET_KEY = /^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}))?$/;
  const formats = {};
  function dateFormat(opts) {
    const k = JSON.stringify(opts);
    if (!formats[k]) formats[k] = new Intl.DateTimeFormat(lang, Object.assign({timeZone: "UTC"}, opts));
    return formats[k];
  }
  function bucketDate(key) {
    const m = BUCKET_KEY.exec(String(key));
    return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0))) : null;
  }
  const SHORT_DAY = lang.startsWith("ja") ? {month: "numeric", day: "numeric"} : {month: "short", day: "numeric"};
  // labels: all the chart's keys; an hourly axis over several days says the day at each hour.
  function bucketTick(key, bucket, labels) {
    const d = bucketDate(key);
    if (!d) return key;
    if (bucket !== "hour") return dateFormat(SHORT_DAY).format(d) + (bucket !== "week" ? "" : lang.startsWith("ja") ? "〜" : "–");
    const oneDay = !labels.length || String(labels[0]).slice(0, 10) === String(labels[labels.length - 1]).slice(0, 10);
    return dateFormat(oneDay ? {hour: "numeric"} : Object.assign({hour: "numeric"}, SHORT_DAY)).format(d);
  }
  // style: "full" in a tooltip (2026年11月19日木曜日); "medium" in a table's narrow first column (2026/11/19).
  function bucketText(key, bucket, style) {
    const d = bucketDate(key);
    if (!d) return key;
    if (bucket === "hour") return dateFormat({dateStyle: style, timeStyle: "short"}).format(d);
    const day = dateFormat({dateStyle: style}).format(d);
    return bucket === "week" ? fmt(t.week_of, {date: day}) : day;
  }
  function pattern(color, kind) {
    if (kind === "solid") return color;
    const c = document.createElement("canvas");
    c.width = c.height = 8;
    const x = c.getContext("2d");
    x.fillStyle = color; x.fillRect(0, 0, 8, 8);
    x.strokeStyle = "rgba(255,255,255,0.75)"; x.fillStyle = "rgba(255,255,255,0.8)"; x.lineWidth = 2;
    if (kind === "diag") { x.beginPath(); x.moveTo(-2, 10); x.lineTo(10, -2); x.stroke(); }
    else if (kind === "dots") { x.beginPath(); x.arc(4, 4, 1.6, 0, 7); x.fill(); }
    else { x.beginPath(); x.moveTo(4, 0); x.lineTo(4, 8); x.moveTo(0, 4); x.lineTo(8, 4); x.stroke(); }
    return x.createPattern(c, "repeat");
  }
  function styleFor(ds, i) {
    const [color, kind] = FIXED[ds.key] || [OKABE[i % OKABE.length], KINDS[i % KINDS.length]];
    return {color, fill: pattern(color, kind)};
  }

  function query(section) {
    const params = new URLSearchParams(window.location.search);
    const extra = JSON.parse(section.dataset.params || "{}");
    Object.entries(extra).forEach(([k, v]) => params.set(k, v));
    return params;
  }
  function urlFor(section, csv) {
    const q = query(section);
    if (csv) { q.set("format", "csv"); q.set("table", section.dataset.table || "table"); }
    return cfg.apiBase + section.dataset.report + "?" + q.toString();
  }

  function emptyRow(text, span) {
    const tr = el("tr", "empty");
    const td = el("td", null, text);
    td.colSpan = span;
    tr.append(td);
    return tr;
  }

  // time: the bucket of a table whose first column holds time buckets (the chart's keys).
  function renderTable(slot, table, time) {
    const tbl = el("table", "sv-table");
    const head = el("tr");
    // A column of numbers is right-aligned, its header too.
    const numeric = table.columns.map((_, i) => i > 0 && table.rows.length > 0
      && table.rows.every((r) => r[i] === null || typeof r[i] === "number"));
    table.columns.forEach((c, i) => {
      const th = el("th", numeric[i] ? "num" : null);
      th.scope = "col";
      const short = table.short && table.short[i];  // a shorter header; the full one in its title
      if (short) { const abbr = el("abbr", null, short); abbr.title = c; th.append(abbr); } else th.textContent = c;
      head.append(th);
    });
    tbl.append(el("thead")); tbl.tHead.append(head);
    const body = el("tbody");
    if (!table.rows.length) body.append(emptyRow(t.no_data, table.columns.length));
    table.rows.forEach((row) => {
      const tr = el("tr");
      // An empty cell ("–") in a column of numbers sits where its numbers do, not under the column before.
      row.forEach((v, i) => {
        const c = el(i === 0 ? "th" : "td", numeric[i] || typeof v === "number" ? "num" : null, v === null ? "–" : v);
        if (i === 0) c.scope = "row";
        if (i === 0 && time && bucketDate(v)) {  // the period in words; the key stays for machines
          c.replaceChildren(el("time", null, bucketText(v, time, "medium")));
          c.firstChild.dateTime = String(v).replace(" ", "T");
        }
        tr.append(c);
      });
      body.append(tr);
    });
    tbl.append(body);
    slot.replaceChildren(tbl);
  }

  function renderChart(section, spec) {
    const canvas = section.querySelector("canvas");
    if (!canvas || !spec || typeof Chart === "undefined") return;
    const datasets = spec.datasets.map((ds, i) => {
      const s = styleFor(ds, i);
      const line = (ds.type || spec.type) === "line";
      return {label: ds.label, data: ds.data, type: ds.type || spec.type, yAxisID: ds.yAxisID || (spec.horizontal ? undefined : "y"),
              backgroundColor: line ? s.color : s.fill, borderColor: s.color, borderWidth: line ? 2 : 1,
              pointStyle: ["circle", "rect", "triangle", "rectRot"][i % 4], spanGaps: true, key: ds.key,
              stack: spec.stacked && !line ? "s" : undefined, order: line ? 0 : 1};
    });
    const scales = {x: {stacked: !!spec.stacked}, y: {stacked: !!spec.stacked, beginAtZero: true}};
    if (spec.horizontal) { scales.x.beginAtZero = true; }
    const tooltip = {};
    if (spec.time) {
      scales.x.ticks = {callback(value) { return bucketTick(this.getLabelForValue(value), spec.time, this.chart.data.labels); }};
      tooltip.callbacks = {title: (items) => (items.length ? bucketText(items[0].label, spec.time, "full") : "")};
    }
    // Counts of messages or tickets: whole-number ticks (a single message drew 0.1, 0.2 ... 1.0).
    if (spec.integer) scales[spec.horizontal ? "x" : "y"].ticks = {precision: 0};
    if (datasets.some((d) => d.yAxisID === "score")) scales.score = {position: "right", min: -1, max: 1, grid: {drawOnChartArea: false}};
    if (datasets.some((d) => d.yAxisID === "ces")) scales.ces = {position: "right", min: 1, max: 7, grid: {drawOnChartArea: false}};
    if (spec.horizontal) {  // a bar per row: grow with the rows instead of squeezing them into lines
      const perRow = spec.stacked ? 24 : 12 * datasets.length + 6;
      canvas.parentElement.style.height = Math.max(280, 70 + spec.labels.length * perRow) + "px";
    }
    const existing = charts[section.id];
    if (existing) {
      existing.data.labels = spec.labels;
      existing.data.datasets = datasets;
      existing.update();
      return;
    }
    charts[section.id] = new Chart(canvas, {
      type: spec.type,
      data: {labels: spec.labels, datasets},
      options: {responsive: true, maintainAspectRatio: false, animation: false, indexAxis: spec.horizontal ? "y" : "x",
                scales, plugins: {legend: {position: "bottom", labels: {usePointStyle: false}}, tooltip}},
    });
  }

  const extras = {
    sentiment(section, d) {
      const s = d.summary;
      setText("tile-messages", s.messages);
      setText("tile-negative", s.negative_share === null ? "–" : Math.round(s.negative_share * 100) + "%");
      setText("tile-score", s.avg_score === null ? "–" : s.avg_score.toFixed(2));
    },
    surveys(section, d) {
      if (section.dataset.table !== "table") return;
      setText("tile-csat", d.summary.csat === null ? "–" : d.summary.csat + "%");
      setText("tile-nps", d.summary.nps === null ? "–" : d.summary.nps);
    },
    operations(section, d) {
      const m = (v) => (v === null ? "–" : fmt(t.minutes, {n: v}));
      setText("ops-frt", m(d.first_response.median_min) + " / " + m(d.first_response.p90_min));
      setText("ops-rt", m(d.resolution.median_min) + " / " + m(d.resolution.p90_min));
      setText("ops-breached", d.breaching.breached);
      setText("ops-at-risk", d.breaching.at_risk);
      const body = document.querySelector("#breaching tbody");
      body.replaceChildren(...d.breaching.tickets.map((r) => {
        const tr = el("tr", "sla-" + r.state);
        const a = el("a", null, "#" + r.id + " " + (r.subject || ""));
        a.href = cfg.ticketUrl + r.id;
        const td0 = el("td"); td0.append(a);
        tr.append(td0, el("td", null, t[r.clock]), el("td", "state", t[r.state]),
                  el("td", "num", fmt(t.elapsed_of_target, {elapsed: r.elapsed_min, target: r.target_min})),
                  el("td", null, r.assignee || t.unassigned));
        return tr;
      }));
      if (!d.breaching.tickets.length) body.append(emptyRow(t.none_breaching, 5));
    },
    staffing(section, d) {
      setText("staff-online", d.online);
      setText("staff-waiting", d.waiting);
    },
    keywords(section, d) {
      const chip = (r, withRatio) => {
        const li = el("li");
        const b = el("button", "chip", r.term + " " + r.count + (withRatio ? " (×" + r.ratio + ")" : ""));
        b.type = "button";
        b.dataset.term = r.term;
        b.addEventListener("click", () => drill(section, r.term));
        li.append(b);
        return li;
      };
      document.getElementById("rising").replaceChildren(...d.rising.map((r) => chip(r, true)));
      document.getElementById("top-terms").replaceChildren(...d.top.map((r) => chip(r, false)));
    },
  };
  function setText(id, v) { const e = document.getElementById(id); if (e) e.textContent = String(v); }

  async function drill(section, term) {
    const q = query(section);
    q.set("term", term);
    const r = await fetch(cfg.apiBase + "keyword-messages?" + q.toString(), {credentials: "same-origin"});
    if (!r.ok) return;
    const d = await r.json();
    const box = document.getElementById("drill");
    box.hidden = false;
    document.getElementById("drill-title").textContent = fmt(t.messages_with, {term: d.term});
    document.getElementById("drill-list").replaceChildren(...d.messages.map((m) => {
      const li = el("li", "sent-" + (m.label || ""));
      const a = el("a", null, t.ticket + " #" + m.ticket_id);
      a.href = cfg.ticketUrl + m.ticket_id;
      li.append(a, el("time", "muted", " " + m.sent_at + " "), el("span", "excerpt", m.excerpt));
      return li;
    }));
  }

  async function load(section) {
    section.setAttribute("aria-busy", "true");
    const err = section.querySelector(".report-error");
    try {
      const r = await fetch(urlFor(section, false), {credentials: "same-origin"});
      const d = await r.json().catch(() => ({}));  // a proxy's or server's error page is no JSON
      // Logged out (the session ended, or in another tab): say what to do, not the API's code.
      if (r.status === 401) throw new Error(t.logged_out);
      if (!r.ok) throw new Error(d.error || r.status);
      data[section.id] = d;
      renderChart(section, d.chart);
      const tableName = d[section.dataset.table] ? section.dataset.table : "table";
      renderTable(section.querySelector(".table-slot"), d[tableName], tableName === "table" && d.chart ? d.chart.time : null);
      if (extras[section.dataset.report]) extras[section.dataset.report](section, d);
      if (err) err.hidden = true;
    } catch (e) {
      if (err) { err.hidden = false; err.textContent = t.error + " " + e.message; }
    } finally {
      section.setAttribute("aria-busy", "false");
      section.dataset.loaded = String(Number(section.dataset.loaded || 0) + 1);
    }
  }
  const sections = Array.from(document.querySelectorAll(".report[data-report]"));
  sections.forEach((s) => {
    const link = s.querySelector("a[data-csv]");
    if (link) link.href = urlFor(s, true);
  });
  function reload(names) {
    return Promise.all(sections.filter((s) => !names || names.includes(s.dataset.report)).map(load));
  }

  // ---- alerts ------------------------------------------------------------------------------
  // The feed and its CSV cover the page's range, as the other reports do.
  const alertList = document.getElementById("alert-list");
  const alertsFeed = document.getElementById("alerts-feed");
  // The feed of a filtered page (an inbox, a team, ... or a range that may end before today)
  // lists only the alerts that fit it, live ones too.
  const pageArgs = new URLSearchParams(window.location.search);
  const alertsFiltered = ["channel", "inbox", "team", "agent", "tag", "to"]
    .some((k) => pageArgs.get(k) && pageArgs.get(k) !== "all");
  if (alertsFeed) alertsFeed.querySelector("a.csv").href = urlFor(alertsFeed, true);
  function alertItem(a) {
    const li = el("li", "alert-item" + (a.acknowledged_at ? " acked" : ""));
    li.id = "alert-" + a.id;
    li.dataset.alertId = a.id;
    const head = el("div", "alert-head");
    const link = el("a", "alert-link", t.ticket + " #" + a.ticket_id + " " + (a.subject || ""));
    link.href = cfg.ticketUrl + a.ticket_id;
    head.append(el("span", "badge rule rule-" + a.rule, t["rule_" + a.rule] || a.rule), link);
    const meta = el("div", "alert-meta muted");
    meta.append(el("span", "contact", a.contact || ""), el("span", null, " · "),
                el("span", "assignee", a.assignee ? fmt(t.on_it, {name: a.assignee.name}) : t.unassigned),
                el("span", null, " · "), el("time", null, timeText(a.created_at)));
    li.append(head, el("p", "excerpt", a.excerpt || ""), meta);
    const foot = el("div", "alert-foot");
    if (a.acknowledged_at) {
      foot.append(el("span", "ack-by", fmt(t.acknowledged_by, {name: a.acknowledged_by ? a.acknowledged_by.name : ""})));
    } else {
      const btn = el("button", "ack", t.acknowledge);
      btn.type = "button";
      btn.addEventListener("click", () => ack(a.id, btn));
      foot.append(btn);
    }
    li.append(foot);
    return li;
  }
  function upsertAlert(a, prepend) {
    if (!alertList) return;
    const old = document.getElementById("alert-" + a.id);
    const fresh = alertItem(a);
    if (old) old.replaceWith(fresh);
    else if (prepend) { alertList.prepend(fresh); fresh.classList.add("fresh"); }
    else alertList.append(fresh);
  }
  async function ack(id, btn) {
    btn.disabled = true;
    const r = await fetch(cfg.ackUrl + "/" + id + "/ack", {method: "POST", credentials: "same-origin",
                                                          headers: {"X-CSRFToken": csrf, "Accept": "application/json"}});
    if (r.ok) upsertAlert((await r.json()).alert, false);
    else btn.disabled = false;
  }
  async function loadAlerts() {
    if (!alertList) return;
    const r = await fetch(urlFor(alertsFeed, false), {credentials: "same-origin"});
    if (!r.ok) return;
    const d = await r.json();
    alertList.replaceChildren();
    d.alerts.forEach((a) => upsertAlert(a, false));
  }

  // ---- live --------------------------------------------------------------------------------
  // Throttle live refreshes per report: a busy desk sends many events a second, and a report
  // redrawn every few seconds is live enough. Cheap charts refresh faster than heavy ones.
  const WAIT = {sentiment: 1500, breakdown: 3000, surveys: 3000, operations: 10000, keywords: 15000, agents: 15000,
                staffing: 3000};
  const lastRun = {};
  const timers = {};
  function refreshSoon(names) {
    names.forEach((name) => {
      if (timers[name]) return;  // already scheduled
      const wait = Math.max(300, (lastRun[name] || 0) + (WAIT[name] || 5000) - Date.now());
      timers[name] = setTimeout(() => { timers[name] = null; lastRun[name] = Date.now(); reload([name]); }, wait);
    });
  }
  let connectedOnce = false;
  let socket = null;
  if (typeof io !== "undefined") {
    socket = io("/agent", {transports: ["websocket", "polling"]});
    socket.on("connect", () => {
      // After a reconnect, reload everything: whatever was missed is in the numbers.
      if (connectedOnce) { reload(); loadAlerts(); }
      connectedOnce = true;
      document.body.dataset.live = "ready";
    });
    socket.on("disconnect", (reason) => { if (reason === "io server disconnect") socket.connect(); });  // see desk.js
    socket.on("message.sentiment", () => refreshSoon(["sentiment", "breakdown", "keywords"]));
    socket.on("survey.answered", () => refreshSoon(["surveys", "agents"]));
    socket.on("ticket.updated", () => refreshSoon(["operations", "staffing"]));
    socket.on("ticket.created", () => refreshSoon(["staffing"]));
    socket.on("message.created", (p) => { if (p.ticket) refreshSoon(["operations"]); });
    socket.on("agent.availability", () => refreshSoon(["staffing"]));
    // Who has a page open is no event: the table looks again every half minute.
    if (document.querySelector("[data-report=staffing]")) setInterval(() => refreshSoon(["staffing"]), 30000);
    socket.on("sentiment.alert", (p) => {
      if (!alertsFiltered) { upsertAlert(p, true); return; }
      // The payload cannot say whether the ticket fits the page's team, agent or tag: the server does.
      loadAlerts().then(() => {
        const li = document.getElementById("alert-" + p.id);
        if (li) li.classList.add("fresh");
      });
    });
    socket.on("alert.acknowledged", (p) => upsertAlert(p, false));
  }
  window.supervisor = {charts, data, reload, socket, chartFor: (id) => charts[id]};
  Promise.all([reload(), loadAlerts()]).then(() => { document.body.dataset.reports = "ready"; });
})();
