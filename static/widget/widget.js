// The chat frame: talks to the desk over the /widget socket.
// Everything a person typed is inserted with textContent, never as HTML.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("widget-config").textContent);
  const t = cfg.i18n;
  const $ = (id) => document.getElementById(id);
  const log = $("log"), typing = $("typing"), errorBox = $("error"), statusEl = $("status");
  const text = $("text"), fileInput = $("file"), prechat = $("prechat"), composer = $("composer");
  const emailRow = $("offline-email-row"), emailInput = $("offline-email");
  const seen = new Set();
  let state = {pass: null, online: null, prechat: false, emailKnown: false, open: false, unread: 0, fatal: false};

  // Identity and page from the loader, passed in the fragment; then drop it from the URL.
  let params = {};
  try { params = JSON.parse(decodeURIComponent(location.hash.slice(1)) || "{}") || {}; } catch (e) { params = {}; }
  try { history.replaceState(null, "", location.pathname + location.search); } catch (e) { /* sandboxed */ }

  // The token is kept by the loader in the host page's storage (see loader.js) and handed
  // over in the fragment. The frame never keeps it in its own storage: in browsers without
  // storage partitioning that would be shared by every site embedding the frame.
  let token = typeof params.token === "string" ? params.token : null;
  function loadToken() { return token; }
  function saveToken(tok) {
    if (!tok || tok === token) return;
    token = tok;
    parent.postMessage({type: "helpdesk:token", token: tok}, "*");
  }
  function fmt(str, vars) { return str.replace(/%\((\w+)\)s/g, (_, k) => vars[k]); }
  function el(tag, cls, content) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content !== undefined && content !== null) e.textContent = String(content);
    return e;
  }
  function clientId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function showError(code, fallback) {
    errorBox.textContent = (t.errors && t.errors[code]) || fallback || code;
    errorBox.dataset.code = code;
    errorBox.hidden = false;
  }
  function clearError() { errorBox.hidden = true; errorBox.textContent = ""; delete errorBox.dataset.code; }

  // ---- open / close ------------------------------------------------------------
  function setOpen(open) {
    const wasOpen = state.open;
    state.open = open;
    document.body.dataset.state = open ? "open" : "closed";
    $("panel").hidden = !open;
    $("launcher").hidden = open;
    $("launcher").setAttribute("aria-expanded", String(open));
    if (open) { state.unread = 0; renderUnread(); setTimeout(() => text.focus(), 0); scrollDown(); }
    // Keyboard users land where they were: on the launcher, not on the page's first element.
    else if (wasOpen) $("launcher").focus();
    parent.postMessage({type: "helpdesk:resize", open: open}, "*");
  }
  function renderUnread() {
    const u = $("unread");
    u.hidden = state.unread === 0;
    u.textContent = state.unread ? String(state.unread) : "";
  }
  $("launcher").addEventListener("click", () => setOpen(true));
  $("close").addEventListener("click", () => setOpen(false));
  document.addEventListener("keydown", (e) => {
    // not while an IME is composing: there Escape cancels the conversion, not the chat
    if (e.key === "Escape" && state.open && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); setOpen(false); }
  });

  // ---- messages ----------------------------------------------------------------
  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function timeText(iso) {
    try { return new Date(iso).toLocaleTimeString(cfg.locale, {hour: "2-digit", minute: "2-digit"}); } catch (e) { return ""; }
  }
  async function fetchAttachment(m, a) {
    const r = await fetch(cfg.attachmentUrl + m.id + "/" + a.index, {headers: {"X-Widget-Pass": state.pass || ""}});
    if (!r.ok) throw new Error("attachment " + r.status);
    return URL.createObjectURL(await r.blob());
  }
  function renderAttachment(m, a) {
    const li = el("li", "att");
    if (typeof a.url === "string" && /^\/[^/]/.test(a.url)) {
      // An agent's file, live: a signed, expiring link on the desk's own origin (a download).
      const link = el("a", "file-link");
      link.href = a.url;
      link.download = a.filename;
      link.title = t.download;
      if (/^image\/(png|jpeg|gif|webp)$/.test(a.content_type)) {
        const img = el("img");
        img.alt = a.filename;
        img.src = a.url;
        link.append(img);
      } else {
        link.textContent = a.filename;
      }
      li.append(link);
      return li;
    }
    if (/^image\//.test(a.content_type)) {
      const img = el("img");
      img.alt = a.filename;
      li.append(img);
      fetchAttachment(m, a).then((url) => { img.src = url; }).catch(() => { li.replaceChildren(el("span", null, a.filename)); });
    } else {
      const btn = el("button", "link", a.filename);
      btn.type = "button";
      btn.title = t.download;
      btn.addEventListener("click", async () => {
        try {
          const url = await fetchAttachment(m, a);
          const link = el("a");
          link.href = url;
          link.download = a.filename;
          document.body.append(link);
          link.click();
          link.remove();
        } catch (e) { showError("unavailable"); }
      });
      li.append(btn);
    }
    return li;
  }
  // Web links in the desk's messages (a survey's page, a help article) become links. Built from
  // text nodes and <a> elements, never HTML, and only http(s): the text stays text.
  const URL_RE = /https?:\/\/[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+/g;
  function safeUrl(raw) {
    try {
      const u = new URL(raw);
      return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
    } catch (e) { return null; }
  }
  function webLink(href, label) {
    const a = el("a", "web-link", label);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }
  function linkified(body) {
    const div = el("div", "body");
    let last = 0;
    for (const match of body.matchAll(URL_RE)) {
      const raw = match[0].replace(/[.,;:!?')\]]+$/, "");  // a sentence's end is not the link's
      const href = safeUrl(raw);
      if (!href) continue;
      div.append(document.createTextNode(body.slice(last, match.index)), webLink(href, raw));
      last = match.index + raw.length;
    }
    div.append(document.createTextNode(body.slice(last)));
    return div;
  }
  function renderQuickReplies(m) {
    const box = el("div", "quick-replies");
    box.setAttribute("role", "group");
    m.quick_replies.forEach((q) => {
      if (!q || typeof q.text !== "string" || !q.text) return;
      const btn = el("button", "quick-reply", q.label || q.text);
      btn.type = "button";
      btn.addEventListener("click", () => {
        box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        send(q.text, () => { box.querySelectorAll("button").forEach((b) => { b.disabled = false; }); }, true);
      });
      box.append(btn);
    });
    return box;
  }
  function renderMessage(m) {
    const li = el("li", "msg dir-" + m.direction);
    li.dataset.messageId = m.id;
    const head = el("div", "msg-head");
    head.append(el("span", "who", m.direction === "in" ? t.you : (m.agent_name || t.agent)));
    const time = el("time", null, timeText(m.sent_at));
    if (m.sent_at) time.dateTime = m.sent_at;
    head.append(time);
    li.append(head);
    if (m.body) li.append(m.direction === "out" ? linkified(String(m.body)) : el("div", "body", m.body));
    const survey = typeof m.survey_url === "string" ? safeUrl(m.survey_url) : null;
    if (survey && !String(m.body || "").includes(m.survey_url)) li.append(webLink(survey, t.survey_link));
    if (m.attachments && m.attachments.length) {
      const ul = el("ul", "attachments");
      m.attachments.forEach((a) => ul.append(renderAttachment(m, a)));
      li.append(ul);
    }
    // Answer buttons, as LINE and Messenger show them: under the newest message only.
    if (Array.isArray(m.quick_replies) && m.quick_replies.length) li.append(renderQuickReplies(m));
    return li;
  }
  function addMessage(m, live) {
    if (!m || seen.has(m.id)) return;
    seen.add(m.id);
    log.querySelectorAll(".quick-replies").forEach((box) => box.remove());
    log.append(renderMessage(m));
    if (m.direction === "out") {
      typing.textContent = "";
      if (m.agent_name) $("agent-name").textContent = fmt(t.with_agent, {name: m.agent_name});
      if (live && !state.open) { state.unread += 1; renderUnread(); }
    }
    scrollDown();
  }

  // ---- presence, pre-chat, offline ----------------------------------------------
  function renderMode() {
    const online = state.online;
    statusEl.dataset.online = online === null ? "unknown" : String(online);
    statusEl.textContent = online === null ? t.connecting : online ? t.online : t.offline;
    const needPrechat = state.prechat;
    prechat.hidden = !needPrechat;
    composer.hidden = needPrechat;
    emailRow.hidden = !(online === false && !state.emailKnown);
  }

  // The desk holds a message back until it has what it needs: show the form that asks for it.
  // The state it was drawn from may be stale: the last agent went offline after the presence
  // check, or the inbox started asking for the pre-chat form after this page was loaded.
  function askFor(code) {
    if (code === "email_required") {
      state.online = false;
      state.emailKnown = false;
      renderMode();
      emailInput.focus();
    } else if (code === "prechat_required") {
      state.prechat = true;
      renderMode();
      $("prechat-name").focus();
    }
  }

  // ---- socket --------------------------------------------------------------------
  const socket = io("/widget", {
    transports: ["websocket", "polling"],
    auth: (cb) => cb({inbox: cfg.inbox, token: loadToken(), identifier: params.identifier,
                      identity_hash: params.identity_hash, name: params.name, email: params.email,
                      page_url: params.page_url}),
  });
  window.helpdeskWidget = {socket, get state() { return state; }};

  socket.on("connect", () => {
    socket.emit("hello", {}, (r) => {
      if (!r || !r.ok) return;
      if (r.token) saveToken(r.token);
      state.pass = r.pass;
      state.online = r.agents_online;
      state.prechat = r.prechat;
      state.emailKnown = r.email_known;
      r.history.forEach((m) => addMessage(m, false));
      renderMode();
      document.body.dataset.ready = "yes";
    });
  });
  socket.on("connect_error", (err) => {
    const code = err && err.data && err.data.code;
    if (code) {  // refused (bad identity, unknown inbox): retrying would not help
      state.fatal = true;
      showError(code, err.message);
      statusEl.textContent = "";
      document.body.dataset.ready = "refused";
    }
  });
  socket.on("disconnect", () => { state.online = null; renderMode(); });
  socket.on("message.created", (m) => addMessage(m, true));
  socket.on("widget.error", (e) => { showError(e.code, e.message); askFor(e.code); });
  let typingTimer = null;
  socket.on("agent.typing", (p) => {
    clearTimeout(typingTimer);
    typing.textContent = p.typing ? fmt(t.typing, {name: p.agent_name || t.agent}) : "";
    if (p.typing) typingTimer = setTimeout(() => { typing.textContent = ""; }, 6000);
  });
  setInterval(() => {
    if (!socket.connected) return;
    socket.emit("presence", {}, (r) => { if (r && r.ok && r.agents_online !== state.online) { state.online = r.agents_online; renderMode(); } });
  }, 30000);

  // ---- forms -----------------------------------------------------------------------
  prechat.addEventListener("submit", (e) => {
    e.preventDefault();
    clearError();
    const name = $("prechat-name").value.trim(), email = $("prechat-email").value.trim();
    if (!name) return showError("bad_name");
    if (!email || !$("prechat-email").checkValidity()) return showError("bad_email");
    socket.emit("identify", {name, email}, (r) => {
      if (!r || !r.ok) return;
      state.prechat = false;
      state.emailKnown = r.email_known;
      renderMode();
      text.focus();
    });
  });

  // The offline form's email, when it is shown: undefined when it is not, null after an error.
  function offlineEmail() {
    if (emailRow.hidden) return undefined;
    const email = emailInput.value.trim();
    if (!email) { showError("email_required"); return null; }
    if (!emailInput.checkValidity()) { showError("bad_email"); return null; }
    return email;
  }
  // An answer to the survey on screen (a button's text, or a bare number typed while its buttons
  // show) needs no email: the desk takes it without one, as nobody has to answer it.
  function answersSurvey(body) {
    return !!log.querySelector(".quick-replies") && /^\s*[0-9０-９]{1,2}\s*$/.test(body);
  }
  // One line to the desk, typed or a quick-reply button's; done(ok) when it is settled.
  function send(body, done, isAnswer) {
    const finish = done || (() => {});
    clearError();
    if (body.length > cfg.maxText) { showError("too_long"); return finish(false); }
    let email;
    if (isAnswer || answersSurvey(body)) {
      const given = emailInput.value.trim();
      email = !emailRow.hidden && given && emailInput.checkValidity() ? given : undefined;
    } else {
      email = offlineEmail();
    }
    if (email === null) return finish(false);
    const payload = {text: body, client_id: clientId()};
    if (email) payload.email = email;
    socket.emit("message", payload, (r) => {
      finish(!!(r && r.ok));
      if (!r || !r.ok) return;  // the widget.error event already explained why
      if (payload.email) { state.emailKnown = true; }
      state.online = r.agents_online;
      renderMode();
      addMessage(r.message, false);
    });
  }
  function sendText() {
    const body = text.value.trim();
    if (!body) return;
    $("send").disabled = true;
    send(body, (ok) => {
      $("send").disabled = false;
      if (ok) text.value = "";
    });
  }
  composer.addEventListener("submit", (e) => { e.preventDefault(); sendText(); });
  text.addEventListener("keydown", (e) => {
    // Enter that ends an IME conversion (Japanese input) is not "send": Safari reports it
    // with keyCode 229 and isComposing already false.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); sendText(); }
  });

  fileInput.addEventListener("change", async () => {
    clearError();
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > cfg.maxUpload) return showError("file_too_large");
    const email = offlineEmail();
    if (email === null) return;
    const form = new FormData();
    form.append("file", file);
    form.append("client_id", clientId());
    if (email) form.append("email", email);
    statusEl.textContent = t.uploading;
    try {
      const r = await fetch(cfg.uploadUrl, {method: "POST", body: form, headers: {"X-Widget-Pass": state.pass || ""}});
      const data = await r.json().catch(() => ({}));
      if (!r.ok || !data.ok) { showError(data.error || "unavailable", data.message); askFor(data.error); }
      else { if (email) state.emailKnown = true; addMessage(data.message, false); }
    } catch (e) {
      showError("unavailable");
    }
    renderMode();
  });

  setOpen(false);
  renderMode();
  // The loader shows the frame only once it hears this: a frame the browser refused to draw
  // (a site not in the inbox's allowed origins) never says it, and is removed.
  parent.postMessage({type: "helpdesk:ready"}, "*");
})();
