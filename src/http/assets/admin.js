// buurtrelay dashboard: refreshes the alerts and delivery sections every few
// seconds, so a coordinator can watch copies go from pending to delivered.
// The page works without this script (server-rendered); the toggle appears
// only when it runs. The fresh sections come from this server's own escaped
// HTML, parsed with DOMParser (parsed scripts never run; the CSP forbids them).
"use strict";

(function () {
  const SECTIONS = ["alerts", "health"];
  const EVERY_MS = 5000;
  let timer = null;

  function focusInside(id) {
    const el = document.getElementById(id);
    return el && el.contains(document.activeElement);
  }

  async function refresh(button) {
    try {
      const r = await fetch("/admin", { credentials: "same-origin", headers: { accept: "text/html" } });
      if (!r.ok) {
        // Signed out (401) or the dashboard was turned off (404): stop.
        stop(button);
        return;
      }
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      for (const id of SECTIONS) {
        const fresh = doc.getElementById(id);
        const old = document.getElementById(id);
        // Never pull the section from under the keyboard focus.
        if (fresh && old && !focusInside(id)) old.replaceWith(document.importNode(fresh, true));
      }
    } catch (e) {
      /* try again at the next tick */
    }
  }

  function start(button) {
    button.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      if (document.visibilityState === "visible") refresh(button);
    }, EVERY_MS);
  }

  function stop(button) {
    button.setAttribute("aria-pressed", "false");
    clearInterval(timer);
    timer = null;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("live-toggle");
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", () => (timer ? stop(button) : start(button)));
    start(button);
  });
})();
