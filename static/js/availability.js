// The top bar's availability switch (available / busy for automatic assignment): saved as
// soon as it changes, without leaving the page (a reply being written stays). Without
// JavaScript the form's own button posts it.
(() => {
  const form = document.getElementById("availability");
  if (!form) {
    return;
  }
  const select = form.elements.availability;
  select.addEventListener("change", async () => {
    const before = form.dataset.state;
    try {
      const resp = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!resp.ok) {
        throw new Error(`HTTP ${resp.status}`);
      }
      form.dataset.state = (await resp.json()).availability;
    } catch (err) {
      form.dataset.state = before;
      window.alert(form.dataset.failed || String(err));
    }
    select.value = form.dataset.state;
  });
  // Changed on another page of this agent's (desk.js passes the event on).
  document.addEventListener("helpdesk:availability", (event) => {
    form.dataset.state = event.detail;
    select.value = event.detail;
  });
})();
