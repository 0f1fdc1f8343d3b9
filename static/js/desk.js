// Live updates for the agent desk: inbox rows and the open ticket's thread.
// Customer text is only ever inserted with textContent, never as HTML.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("desk-config").textContent);
  const t = cfg.i18n;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const ticketEl = document.getElementById("ticket");
  const ticketId = ticketEl ? Number(ticketEl.dataset.ticketId) : null;
  // The page shows its customer's whole history: every ticket of theirs, with its channel.
  let contactId = ticketEl ? Number(ticketEl.dataset.contactId) : null;
  const customerTickets = new Map();
  if (ticketEl) {
    customerTickets.set(ticketId, ticketEl.dataset.channel);
    document.querySelectorAll(".past li[data-ticket-id]").forEach((li) => {
      customerTickets.set(Number(li.dataset.ticketId), li.dataset.channel);
    });
  }
  const replyCfgEl = document.getElementById("reply-config");
  const rc = replyCfgEl ? JSON.parse(replyCfgEl.textContent) : null;
  const table = document.getElementById("tickets");
  const seen = new Set();
  const pageEventId = Number(cfg.lastEventId) || 0;
  let lastEventId = pageEventId;
  // On PostgreSQL two transactions can commit out of id order, so the resync looks
  // a little behind the newest id it saw; ids already handled are skipped.
  const RESYNC_LOOKBACK = 50;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(str, vars) { return str.replace(/\{(\w+)\}/g, (_, k) => vars[k]); }
  function timeText(iso) {  // in the desk's time zone, as the server writes the page's own times
    try {
      return new Date(iso).toLocaleString(document.documentElement.lang || "ja",
                                          {dateStyle: "short", timeStyle: "short", timeZone: cfg.tz});
    } catch (e) { return iso; }
  }
  function sentimentBadge(s, trend) {
    if (!s || !s.label) return el("span", "badge sent sent-pending", t.analysing);
    const b = el("span", "badge sent sent-" + s.label, t[s.label] + (trend === "worsening" ? " ↘" : trend === "improving" ? " ↗" : ""));
    if (s.score !== null && s.score !== undefined) b.title = Number(s.score).toFixed(2);
    return b;
  }
  const deliveryText = (d) => ({pending: t.sending, sent: t.sent, delivered: t.delivered, read: t.read, failed: t.failed})[d] || "";

  // ---- ticket view -------------------------------------------------------
  function renderMessage(m) {
    const mine = m.ticket_id === ticketId;
    const li = el("li", "msg dir-" + m.direction + (mine ? "" : " other-ticket") + (m.unsent ? " unsent" : ""));
    li.id = "m" + m.id;
    li.dataset.messageId = m.id;
    const head = el("div", "msg-head");
    const channel = customerTickets.get(m.ticket_id);
    if (channel) head.append(el("span", "badge ch ch-" + channel, t.channels[channel] || channel));
    if (!mine) {
      const a = el("a", "ticket-link", "#" + m.ticket_id);
      a.href = cfg.ticketUrl + m.ticket_id;
      head.append(a);
    }
    const who = m.direction === "in" ? (document.querySelector(".contact-name") || {}).textContent || t.customer
                                      : (m.agent ? m.agent.name : m.direction === "out" ? t.automatic : "");
    head.append(el("span", "who", who));
    if (m.direction === "note") head.append(el("span", "badge note", t.note));
    if (m.public) head.append(el("span", "badge public", t.public));
    const time = el("time", null, timeText(m.sent_at));
    time.dateTime = m.sent_at;
    head.append(time);
    if (m.edited) head.append(el("span", "badge edited", t.edited));
    if (m.direction === "in") { const s = el("span", "msg-sentiment"); s.append(sentimentBadge(m.sentiment)); head.append(s); }
    if (m.direction === "out") {
      const d = el("span", "delivery", deliveryText(m.delivery));
      d.dataset.delivery = m.delivery;
      if (m.delivery_error) d.title = m.delivery_error;
      head.append(d);
    }
    li.append(head, el("div", "body", m.body));
    if (m.edited && m.edits && m.edits.length) {
      // The customer's earlier texts (newest first), as the page renders them.
      const details = el("details", "edit-history");
      const list = el("ol");
      m.edits.slice().reverse().forEach((e) => {
        const item = el("li");
        if (e.at) { const at = el("time", null, timeText(e.at)); at.dateTime = e.at; item.append(at, " "); }
        item.append(el("span", "edit-text", e.text));
        list.append(item);
      });
      details.append(el("summary", null, t.earlier_versions), list);
      li.append(details);
    }
    if (m.reaction) {
      const r = el("div", "reaction");
      r.append(el("span", "muted", t.reaction), " ", el("span", "emoji", m.reaction));
      li.append(r);
    }
    if (m.delivery === "failed" && m.delivery_error) {
      // The provider's own words (English, technical) after a sentence in the agent's language.
      const detail = el("span", "detail", m.delivery_error);
      detail.lang = "en";
      const error = el("div", "error");
      error.append(el("span", "lead", t.not_delivered), " ", detail);
      li.append(error);
    }
    if (m.unsent) li.append(el("div", "muted", t.unsent));
    if (m.attachments && m.attachments.length) {
      const ul = el("ul", "attachments");
      m.attachments.forEach((a, i) => {
        // Files kept by the desk (no provider URL) open through the agent download link.
        const item = el("li");
        if (a.url) item.textContent = a.filename;
        else { const link = el("a", null, a.filename); link.href = "/agent/attachments/" + m.id + "/" + i; item.append(link); }
        if (a.content_type) item.append(" ", el("span", "muted", a.content_type));
        ul.append(item);
      });
      li.append(ul);
    }
    return li;
  }
  function noteCustomerTicket(tk) {
    if (!ticketEl || !tk || !tk.contact) return;
    if (tk.contact.id === contactId) customerTickets.set(tk.id, tk.channel);
    if (tk.id !== ticketId) showOtherTicket(tk);
  }
  // The sidebar's other tickets of this customer (newest first, as the page lists them): a new
  // one comes in on top, a changed one shows its status, one moved to another customer leaves.
  function showOtherTicket(tk) {
    const list = document.querySelector(".contact-card ul.past");
    if (!list) return;
    const old = list.querySelector('li[data-ticket-id="' + tk.id + '"]');
    if (tk.contact.id !== contactId) { if (old) old.remove(); return; }
    const item = el("li");
    item.dataset.ticketId = tk.id;
    item.dataset.channel = tk.channel;
    const a = el("a", null, "#" + tk.id + " " + (tk.subject || t.no_subject));
    a.href = cfg.ticketUrl + tk.id;
    item.append(a, " ", el("span", "muted", t.statuses[tk.status]));
    if (old) { old.replaceWith(item); return; }
    const none = list.querySelector("li:not([data-ticket-id])");
    if (none) none.remove();
    list.prepend(item);
  }
  function upsertMessage(m) {
    if (!ticketEl) return;
    noteCustomerTicket(m.ticket);
    // Any ticket of this customer's, on any channel: the thread is their whole history.
    if (!customerTickets.has(m.ticket_id)) return;
    const thread = document.getElementById("thread");
    const old = document.getElementById("m" + m.id);
    const fresh = renderMessage(m);
    if (old) old.replaceWith(fresh); else { thread.append(fresh); fresh.scrollIntoView({block: "nearest"}); }
  }
  function showCustomerName(name) {
    const link = document.querySelector(".contact-card .contact-name a");
    if (link) link.textContent = name;
    document.querySelectorAll("#thread .msg.dir-in .who").forEach((w) => { w.textContent = name; });
    const input = document.querySelector(".contact-card .contact-edit input[name=name]");
    if (input && input.value === input.defaultValue) input.defaultValue = input.value = name;  // unless being edited
    if (!rc) return;
    rc.customer = name;  // what a canned reply's {customer} becomes
    const via = document.querySelector(".reply-via");
    const badge = via && via.querySelector(".badge.ch");
    if (!badge) return;
    via.replaceChildren(...rc.replyVia.split(/(\{channel\}|\{name\})/).filter(Boolean)
      .map((part) => part === "{channel}" ? badge : part === "{name}" ? name : part));
  }
  function applyCustomer(tk) {
    // A customer renamed (any of their tickets says so), or this ticket moved to another customer.
    if (!ticketEl || !tk.contact) return;
    if (tk.id === ticketId && tk.contact.id !== contactId) {
      contactId = tk.contact.id;
      const link = document.querySelector(".contact-card .contact-name a");
      if (link) link.href = link.getAttribute("href").replace(/\d+$/, String(contactId));
      showBanner("contact-merged-banner", t.contact_merged);
    }
    if (tk.contact.id !== contactId) return;
    const shown = document.querySelector(".contact-card .contact-name a");
    if (shown && shown.textContent !== tk.contact.name) showCustomerName(tk.contact.name);
  }
  function applyTicketHeader(tk) {
    noteCustomerTicket(tk);
    applyCustomer(tk);
    if (!ticketEl || tk.id !== ticketId) return;
    const st = document.querySelector(".status-badge");
    if (st) { st.dataset.status = tk.status; st.textContent = t.statuses[tk.status]; }
    const pr = document.querySelector(".ticket-head .prio");
    if (pr) { pr.className = "prio prio-" + tk.priority; pr.textContent = t.priorities[tk.priority]; }
    const an = document.querySelector(".assignee-name");
    if (an) an.textContent = tk.assignee ? tk.assignee.name : t.unassigned;
    const ts = document.querySelector(".ticket-sentiment");
    if (ts) { ts.replaceChildren(sentimentBadge(tk.sentiment, tk.sentiment.trend)); }
    // Keep the form in step unless this agent is editing it.
    // The was-* fields follow too: what the form shows is what the server compares a save with, so
    // a field this agent left alone never undoes a colleague's change (views/agent.py update).
    const form = document.getElementById("props");
    if (form && !form.contains(document.activeElement)) {
      const set = (sel, value) => { const e = form.querySelector(sel); if (e) e.value = value; };
      const assignee = tk.assignee ? String(tk.assignee.id) : "";
      const team = tk.team_id ? String(tk.team_id) : "";
      set("#status", tk.status); set("#was-status", tk.status);
      set("#priority", tk.priority); set("#was-priority", tk.priority);
      const pick = form.querySelector("#assignee");
      if (pick && assignee && !Array.from(pick.options).some((o) => o.value === assignee)) {
        pick.append(new Option(tk.assignee.name, assignee));  // shown as it is, never blanked
      }
      set("#assignee", assignee); set("#was-assignee", assignee);
      set("#team", team); set("#was-team", team);
      if (Array.isArray(tk.tags)) { const tags = tk.tags.join(", "); set("#tags", tags); set("#was-tags", tags); }
    }
  }

  // ---- inbox view --------------------------------------------------------
  function rowFor(tk) {
    const tr = el("tr", "prio-" + tk.priority);
    tr.dataset.ticketId = tk.id;
    tr.dataset.created = tk.created_at;
    tr.dataset.score = tk.sentiment.score === null || tk.sentiment.score === undefined ? "" : tk.sentiment.score;
    const link = (text) => { const a = el("a", null, text); a.href = cfg.ticketUrl + tk.id; return a; };
    const td = (cls, child) => { const c = el("td", cls); if (child instanceof Node) c.append(child); else if (child !== undefined) c.textContent = child; return c; };
    const ch = el("span", "badge ch ch-" + tk.channel, t.channels[tk.channel] || tk.channel);
    if (table && table.dataset.bulk) {
      const box = el("input");
      Object.assign(box, {type: "checkbox", name: "ticket_ids", value: String(tk.id)});
      box.setAttribute("form", table.dataset.bulk);
      box.setAttribute("aria-label", fmt(t.select_ticket, {id: tk.id}));
      tr.append(td("pick", box));
    }
    tr.append(td("id", link(String(tk.id))), td("channel", ch), td("contact", tk.contact.name),
              td("subject", link(tk.subject || t.no_subject)), td("status", t.statuses[tk.status]),
              td("priority", t.priorities[tk.priority]), td("assignee", tk.assignee ? tk.assignee.name : "—"),
              td("sentiment", sentimentBadge(tk.sentiment, tk.sentiment.trend)));
    const time = el("time", null, timeText(tk.last_message_at));
    time.dateTime = tk.last_message_at;
    tr.append(td("time", time));
    tr.querySelector(".status").dataset.status = tk.status;
    return tr;
  }
  // The list's sort (search.py SORTS) as a key per row: a changed row moves only if its key did.
  const PRIORITIES = ["low", "normal", "high", "urgent"];
  function sortKey(tr) {
    const id = Number(tr.dataset.ticketId);
    const last = Date.parse(tr.querySelector("td.time time").dateTime);
    const score = tr.dataset.score === "" ? null : Number(tr.dataset.score);
    switch (table.dataset.sort) {
      case "oldest": return [last, id];
      case "created": return [-Date.parse(tr.dataset.created), -id];
      case "priority": return [-PRIORITIES.indexOf(tr.className.match(/prio-(\w+)/)[1]), -last, -id];
      case "sentiment": return [score === null ? 1 : 0, score || 0, -id];
      default: return [-last, -id];  // recent
    }
  }
  function before(a, b) {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
  }
  function placeRow(tr) {
    const key = sortKey(tr);
    const next = Array.from(tr.parentNode.rows).find((r) => r !== tr && r.dataset.ticketId && before(key, sortKey(r)));
    if (next) next.before(tr); else tr.parentNode.append(tr);
  }
  function showTotal(total) {
    // "Page 1 of 2 · 26 tickets", and a next page once there is one.
    const pager = document.querySelector(".pager");
    const info = pager && pager.querySelector(".page-info");
    if (!info) return;
    table.dataset.total = total;
    const page = Number(table.dataset.page), pages = Math.max(1, Math.ceil(total / Number(table.dataset.pageSize)));
    info.textContent = fmt(t.page_of, {n: page, m: pages}) + " · " + fmt(total === 1 ? t.tickets_total_one : t.tickets_total, {n: total});
    if (pages > page && !pager.querySelector("a.next")) {
      const url = new URL(location.href);
      url.searchParams.set("page", page + 1);
      const a = el("a", "next", t.next + " ›");
      a.href = url.pathname + url.search;
      pager.append(a);
    }
  }
  // The list's filter (search.py InboxFilter.live): whether a ticket, as an event shows it, is in
  // this list. null where the page cannot tell: a search, which only the server can run.
  const filter = table ? JSON.parse(table.dataset.filter) : null;
  function inView(tk) {
    const f = filter;
    const active = ["new", "open", "pending"].includes(tk.status);
    if (!(f.status === "all" || (f.status === "active" ? active : f.status === tk.status))) return false;
    if (f.channel !== null && tk.channel !== f.channel) return false;
    if (f.inbox !== null && tk.inbox_id !== f.inbox) return false;
    const who = tk.assignee ? tk.assignee.id : null;
    if (f.assignee === "mine" ? who !== cfg.agent.id : f.assignee === "unassigned" ? who !== null
        : f.assignee !== null && who !== f.assignee) return false;
    if (f.team !== null && tk.team_id !== f.team) return false;
    if (f.tag !== null && !(tk.tags || []).includes(f.tag)) return false;
    const s = tk.sentiment || {};
    if (f.sentiment === "angry" ? !(s.label === "negative" && s.score !== null && s.score <= f.angry_score)
        : f.sentiment !== null && s.label !== f.sentiment) return false;
    return f.search ? null : true;
  }
  function upsertRow(tk, isNew) {
    if (!table) return;
    const body = table.tBodies[0];
    const old = body.querySelector('tr[data-ticket-id="' + tk.id + '"]');
    const fresh = rowFor(tk);
    fresh.classList.add("fresh");
    const wasPicked = old && old.querySelector("td.pick input:checked");
    if (wasPicked) fresh.querySelector("td.pick input").checked = true;  // a live update keeps the selection
    const inList = inView(tk);
    if (old) {
      // A row that no longer fits the filter (a colleague took it, it was resolved) stays where the
      // agent may be about to click, marked as gone from the list, until the next load.
      const wasOut = old.classList.contains("out-of-view");
      const out = inList === false;
      if (out) markOut(fresh);
      old.replaceWith(fresh);
      placeRow(fresh);
      if (out !== wasOut) showTotal(Number(table.dataset.total) + (out ? -1 : 1));
      return;
    }
    // A ticket new to this page: shown where the sort puts it, if it fits the filter and the first page.
    if (inList && table.dataset.page === "1") {
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      body.prepend(fresh);
      placeRow(fresh);
      // The page keeps its size: the row sorted last moves on to the next page (or is the new one).
      const rows = body.querySelectorAll("tr[data-ticket-id]:not(.out-of-view)");
      if (rows.length > Number(table.dataset.pageSize)) rows[rows.length - 1].remove();
      // A changed ticket may have been in the list already, on a later page: only a new one is counted.
      if (isNew) showTotal(Number(table.dataset.total) + 1);
    } else if (isNew && inList !== false) {
      document.title = "● " + document.title.replace(/^● /, "");
    }
  }
  function markOut(tr) {
    tr.classList.add("out-of-view");
    tr.title = t.out_of_view;
    tr.querySelector("td.subject").append(el("span", "out-of-view-note", t.out_of_view));
  }

  // ---- inbox selection for bulk changes ------------------------------------
  function countPicked() {
    const form = table && table.dataset.bulk && document.getElementById(table.dataset.bulk);
    if (!form) return;
    const n = table.querySelectorAll("td.pick input:checked").length;
    form.querySelector(".bulk-count").textContent = fmt(t.selected, {n: n});
    form.classList.toggle("has-selection", n > 0);
  }
  if (table && table.dataset.bulk) {
    const all = document.getElementById("pick-all");
    if (all) all.addEventListener("change", () => {
      table.querySelectorAll("td.pick input").forEach((b) => { b.checked = all.checked; });
      countPicked();
    });
    table.addEventListener("change", (e) => { if (e.target.matches("td.pick input")) countPicked(); });
    countPicked();
  }

  // ---- events -------------------------------------------------------------
  const handlers = {
    "message.created": (p) => { upsertMessage(p); if (p.ticket) ticketChanged(p.ticket); },
    "message.updated": (p) => upsertMessage(p),
    "message.sentiment": (p) => {
      const li = document.getElementById("m" + p.id);
      const slot = li && li.querySelector(".msg-sentiment");
      if (slot) slot.replaceChildren(sentimentBadge(p.sentiment));
      if (p.ticket) ticketChanged(p.ticket);  // its aggregates (and an escalation's priority)
    },
    "ticket.created": (p) => upsertRow(p, true),
    "ticket.updated": (p) => {
      ticketChanged(p);
      if (p.merged_into === ticketId && p.id === ticketId) showBanner("merged-banner", t.merged);
    },
    "ticket.assigned": (p) => ticketChanged(p),
    "sentiment.alert": (p) => showAlert(p),
  };
  function ticketChanged(tk) { upsertRow(tk, false); applyTicketHeader(tk); }
  function handle(name, payload) {
    if (payload && payload.event_id) {
      if (seen.has(payload.event_id)) return;  // the resync may repeat a live event
      seen.add(payload.event_id);
      if (payload.event_id > lastEventId) lastEventId = payload.event_id;
    }
    const fn = handlers[name];
    if (fn) fn(payload);
    document.dispatchEvent(new CustomEvent("desk:" + name, {detail: payload}));
  }
  function showBanner(id, text) {
    // Another ticket's messages moved into this one (or its customer into another): offer a
    // reload rather than lose a draft.
    if (document.getElementById(id)) return;
    const bar = el("div", "flash info", text + " ");
    bar.id = id;
    bar.setAttribute("role", "status");
    const a = el("a", null, t.reload);
    a.href = location.pathname;
    bar.append(a);
    document.getElementById("thread").before(bar);
  }
  // Supervisors' alerts: the newest few, one per ticket, above the page (never over its controls);
  // older ones are only counted, and the dashboard lists them all.
  const MAX_ALERTS = 3;
  let olderAlerts = 0;
  function alertBox() {
    let box = document.getElementById("alerts");
    if (box) return box;
    box = el("div", "alerts");
    box.id = "alerts";
    const list = el("div", "alert-items");
    list.setAttribute("role", "alert");
    const more = el("p", "alerts-more");
    more.hidden = true;
    const count = el("span", "alerts-count");
    more.append(count);
    if (cfg.alertsUrl) { const a = el("a", null, t.dashboard); a.href = cfg.alertsUrl; more.append(" ", a); }
    const all = el("button", "link", t.dismiss_alerts);
    all.type = "button";
    all.addEventListener("click", () => { olderAlerts = 0; list.replaceChildren(); updateAlerts(); });
    more.append(" ", all);
    box.append(list, more);
    document.querySelector("main").prepend(box);
    return box;
  }
  function updateAlerts() {
    const box = alertBox();
    const list = box.querySelector(".alert-items");
    while (list.children.length > MAX_ALERTS) { list.lastElementChild.remove(); olderAlerts++; }
    const count = box.querySelector(".alerts-count");
    count.textContent = fmt(t.more_alerts, {n: olderAlerts});
    count.hidden = olderAlerts === 0;
    box.querySelector(".alerts-more").hidden = olderAlerts === 0 && list.children.length < 2;
    box.hidden = list.children.length === 0 && olderAlerts === 0;
  }
  function showAlert(p) {
    const list = alertBox().querySelector(".alert-items");
    const same = list.querySelector('[data-ticket-id="' + p.ticket_id + '"]');
    if (same) same.remove();  // the ticket's newest alert replaces its last one
    const item = el("div", "alert");
    item.dataset.ticketId = p.ticket_id;
    const text = fmt(t.alert_text, {id: p.ticket_id, contact: p.contact || "", excerpt: p.excerpt || ""});
    const a = el("a", null, text);
    a.href = cfg.ticketUrl + p.ticket_id;
    a.title = text;
    const close = el("button", "alert-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", t.dismiss_alert);
    close.title = t.dismiss_alert;
    close.addEventListener("click", () => { item.remove(); updateAlerts(); });
    item.append(a, close);
    list.prepend(item);
    updateAlerts();
  }

  async function resync() {
    // Fetch exactly what was missed since the last event this page saw.
    for (let guard = 0; guard < 20; guard++) {
      const since = guard === 0 ? Math.max(pageEventId, lastEventId - RESYNC_LOOKBACK) : lastEventId;
      const r = await fetch("/api/v1/events?since=" + since, {credentials: "same-origin"});
      if (!r.ok) return;
      const data = await r.json();
      data.events.forEach((e) => handle(e.name, e.payload));
      lastEventId = Math.max(lastEventId, data.last_event_id);
      if (!data.more) return;
    }
  }

  const socket = io("/agent", {transports: ["websocket", "polling"]});
  const connState = document.getElementById("conn-state");
  socket.on("connect", () => {
    if (connState) { connState.hidden = true; connState.dataset.state = "online"; }
    resync().then(() => {
      if (ticketId) socket.emit("view_ticket", {ticket_id: ticketId});
      document.body.dataset.live = "ready";
    });
  });
  socket.on("disconnect", (reason) => {
    if (connState) { connState.hidden = false; connState.dataset.state = "offline"; }
    // The server drops an agent's pages when an admin changes what the agent may see:
    // come straight back, into the rooms the agent may see now (resync fills the gap).
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", async () => {
    // Refused: if the login is gone (logged out, deactivated), the login page is where to go.
    const r = await fetch("/api/v1/events/latest", {credentials: "same-origin"}).catch(() => null);
    if (r && r.status === 401) window.location.assign("/login");
  });
  Object.keys(handlers).forEach((name) => socket.on(name, (p) => handle(name, p)));
  window.desk = {socket, handle, resync, get lastEventId() { return lastEventId; }};

  // ---- presence and typing -------------------------------------------------
  socket.on("agent.availability", (p) => {  // set on another of this agent's pages: availability.js
    if (p.agent_id !== cfg.agent.id) return;  // a colleague's (this page is a supervisor's)
    document.dispatchEvent(new CustomEvent("helpdesk:availability", {detail: p.availability}));
  });
  socket.on("presence.updated", (p) => {
    if (p.ticket_id !== ticketId) return;
    const others = p.viewers.filter((v) => v.id !== cfg.agent.id).map((v) => v.name);
    document.getElementById("presence").textContent = others.length ? t.viewing + " " + others.join(", ") : "";
  });
  const typingTimers = {};
  socket.on("agent.typing", (p) => {
    if (p.ticket_id !== ticketId || p.agent.id === cfg.agent.id) return;
    const box = document.getElementById("typing");
    clearTimeout(typingTimers[p.agent.id]);
    box.textContent = p.typing ? fmt(p.private ? t.typing : t.replying, {name: p.agent.name}) : "";
    if (p.typing) typingTimers[p.agent.id] = setTimeout(() => { box.textContent = ""; }, 6000);
  });

  const body = document.getElementById("reply-body");
  if (body && ticketId) {
    let last = 0;
    body.addEventListener("input", () => {
      const now = Date.now();
      if (now - last > 2000) {
        last = now;
        socket.emit("typing", {ticket_id: ticketId, typing: true, private: document.getElementById("reply-private").checked});
      }
    });
  }
  // ---- reply box: files, then send without leaving the page -------------------
  // Sent with fetch so a refused reply keeps the text and files and shows why in the box.
  const composer = document.getElementById("composer");
  if (composer && rc && ticketId) {
    const canned = document.getElementById("canned");
    if (canned) canned.addEventListener("change", () => {
      if (canned.value) {
        // Placeholders a canned reply may use: {customer}, {agent}, {ticket}. One pass, with a function:
        // a name is put in as it is, never read as a replacement pattern ("$&") or another placeholder.
        const values = {customer: rc.customer, agent: cfg.agent.name, ticket: String(rc.ticketId)};
        const text = canned.value.replace(/\{(customer|agent|ticket)\}/g, (_, k) => values[k]);
        body.value = (body.value ? body.value + "\n" : "") + text;
        body.focus();
      }
      canned.value = "";
    });
    const fileInput = document.getElementById("reply-files");
    const fileList = document.getElementById("reply-file-list");
    const replyError = document.getElementById("reply-error");
    const sendBtn = document.getElementById("send-reply");
    const showReplyError = (text) => { replyError.textContent = text || ""; replyError.hidden = !text; };
    const sizeText = (n) => n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : n >= 1024 ? Math.round(n / 1024) + " KB"
      : n + " B";  // an empty file is "0 B", not "1 KB" beside the error that says it is empty
    function fileProblem() {
      const picked = Array.from(fileInput.files);
      if (picked.length > rc.maxFiles) return rc.i18n.too_many;
      let total = 0;
      for (const f of picked) {
        if (f.size === 0) return fmt(rc.i18n.empty, {name: f.name});
        if (f.size > rc.maxBytes) return fmt(rc.i18n.too_large, {name: f.name});
        total += f.size;
      }
      return total > rc.maxTotalBytes ? rc.i18n.too_large_total : "";
    }
    fileInput.addEventListener("change", () => {
      fileList.replaceChildren(...Array.from(fileInput.files).map((f) => el("li", null, f.name + " (" + sizeText(f.size) + ")")));
      showReplyError(fileProblem());
    });
    // Ctrl+Enter (⌘+Enter) sends; never while an IME is still composing Japanese text.
    body.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        composer.requestSubmit();
      }
    });
    composer.addEventListener("submit", async (e) => {
      e.preventDefault();
      const problem = fileProblem();
      if (problem) { showReplyError(problem); return; }
      showReplyError("");
      sendBtn.disabled = true;
      try {
        const r = await fetch(composer.action, {method: "POST", body: new FormData(composer), credentials: "same-origin",
                                                headers: {"Accept": "application/json"}});
        const data = await r.json().catch(() => ({}));
        if (!r.ok) { showReplyError(data.message || (r.status === 413 ? rc.i18n.too_large_total : rc.i18n.failed)); return; }
        composer.reset();
        fileList.replaceChildren();
        body.focus();  // ready for the next answer (the Send button the agent clicked was disabled meanwhile)
        // The live event may have come first (and be newer: already sent); never overwrite it.
        if (!document.getElementById("m" + data.id)) upsertMessage(data);
      } catch (err) {
        showReplyError(rc.i18n.failed);
      } finally {
        sendBtn.disabled = false;
      }
    });
  }
  document.querySelectorAll(".show-quoted").forEach((btn) => btn.addEventListener("click", async () => {
    const r = await fetch(btn.dataset.url, {credentials: "same-origin"});
    if (!r.ok) return;
    const data = await r.json();
    btn.replaceWith(el("pre", "quoted", data.quoted));
  }));
  window.addEventListener("beforeunload", () => { if (ticketId) socket.emit("leave_ticket", {ticket_id: ticketId}); });
  void csrf;
})();
