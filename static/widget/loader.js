// Helpdesk chat widget loader, embedded on customer sites with:
//   <script src="https://desk.example/widget.js" data-inbox="INBOX_KEY" async></script>
// Optional: data-locale="en|ja", and for logged-in users of the host site
// data-user-id + data-user-hash (hex HMAC-SHA256 of the id with the inbox's
// identity secret, computed on the host's server), data-user-name, data-user-email.
// It only draws an iframe served by the desk: the chat's styles, storage and
// scripts stay on the desk's origin, away from the host page.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var key = script.getAttribute("data-inbox");
  if (!key) { if (window.console) console.warn("helpdesk widget: data-inbox is missing"); return; }
  var registry = window.__helpdeskWidgets = window.__helpdeskWidgets || {};
  if (registry[key]) return;  // the tag pasted twice
  registry[key] = true;

  var origin = new URL(script.src, location.href).origin;
  var wanted = script.getAttribute("data-locale") || document.documentElement.lang ||
    (navigator.languages && navigator.languages[0]) || navigator.language || "ja";
  var locale = /^en\b/i.test(wanted) ? "en" : "ja";
  // The visitor's token lives in the host site's own storage: browsers block or partition
  // storage inside third-party frames (Chrome incognito, Safari), first-party storage stays.
  var storeKey = "helpdesk.widget." + key;
  var hash = {page_url: location.origin + location.pathname};  // no query: it may hold secrets
  try { var saved = window.localStorage.getItem(storeKey); if (saved) hash.token = saved; } catch (e) { /* no storage */ }
  [["identifier", "data-user-id"], ["identity_hash", "data-user-hash"], ["name", "data-user-name"],
   ["email", "data-user-email"]].forEach(function (pair) {
    var v = script.getAttribute(pair[1]);
    if (v) hash[pair[0]] = v;
  });

  var frame = document.createElement("iframe");
  // The identity rides in the fragment: it never reaches server logs.
  frame.src = origin + "/widget/frame/" + encodeURIComponent(key) + "?locale=" + locale +
    "#" + encodeURIComponent(JSON.stringify(hash));
  frame.title = locale === "en" ? "Chat" : "チャット";
  frame.setAttribute("data-helpdesk-widget", key);
  // CSSOM (not a style attribute or <style>): works under the host's strict CSP, and
  // !important keeps the host's stylesheets from hiding or moving the frame.
  // Hidden until the chat inside says it is ready (see "helpdesk:ready" below).
  var base = {position: "fixed", right: "16px", bottom: "16px", border: "0", margin: "0", padding: "0",
              background: "transparent", "color-scheme": "normal", "z-index": "2147483000",
              display: "block", "max-width": "none", "max-height": "none", "min-width": "0", "min-height": "0",
              left: "auto", top: "auto", opacity: "1", visibility: "hidden", transform: "none", filter: "none",
              "pointer-events": "auto", "box-shadow": "none"};
  function apply(styles) {
    Object.keys(styles).forEach(function (k) { frame.style.setProperty(k, styles[k], "important"); });
  }
  function size(open) {
    if (open) {
      // 16px clear of every edge, as on the right and bottom: on a 375px phone the panel
      // would otherwise touch the left edge.
      apply({width: Math.min(380, window.innerWidth - 32) + "px", height: Math.min(620, window.innerHeight - 32) + "px",
             "border-radius": "12px"});
    } else {
      apply({width: "76px", height: "76px", "border-radius": "38px"});
    }
  }
  apply(base);
  size(false);
  var isOpen = false, ready = false;
  window.addEventListener("message", function (e) {
    if (e.origin !== origin || e.source !== frame.contentWindow || !e.data) return;
    if (e.data.type === "helpdesk:ready") {
      ready = true;
      apply({visibility: "visible"});
    } else if (e.data.type === "helpdesk:resize") {
      isOpen = !!e.data.open;
      size(isOpen);
    } else if (e.data.type === "helpdesk:unavailable") {
      if (window.console) console.warn("helpdesk widget: unknown inbox key " + key);
      frame.remove();
    } else if (e.data.type === "helpdesk:token" && /^[A-Za-z0-9_-]{32,64}$/.test(e.data.token || "")) {
      try { window.localStorage.setItem(storeKey, e.data.token); } catch (err) { /* no storage */ }
    }
  });
  window.addEventListener("resize", function () { size(isOpen); });

  // A frame the browser refused to draw (this site is not in the inbox's allowed origins, so the
  // desk's frame-ancestors blocks it) still fires "load", but its chat never says it is ready:
  // remove it rather than leave a broken box on the page.
  frame.addEventListener("load", function () {
    setTimeout(function () {
      if (ready || !frame.parentNode) return;
      if (window.console) {
        console.warn("helpdesk widget: the chat could not be shown on this site; is " + location.origin +
                     " in the inbox's allowed origins?");
      }
      frame.remove();
    }, 3000);
  });
  function mount() { document.body.appendChild(frame); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
