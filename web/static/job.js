// Keeps the job page current without reloading: polls the server-rendered panel with backoff and swaps
// each changed part in place. The status element is kept (only its text changes) so screen readers
// announce the new status from its aria-live region. Without JavaScript, a <noscript> meta refresh does the job.
(function () {
  "use strict";
  const FAST = 500; // ms: right after something changed
  const SLOW = 4000; // ms: the cap while nothing changes
  const OFFLINE = 10000; // ms: the cap while the server cannot be reached
  const root = document.getElementById("job");
  const note = document.getElementById("poll-note");
  if (!root) return;
  let delay = FAST;
  let timer = null;
  let inFlight = false;

  function panel() {
    return root.querySelector("#panel");
  }

  function say(message) {
    if (!note) return;
    note.hidden = !message;
    note.textContent = message || "";
  }

  // Markup to compare: CSRF tokens are signed with a timestamp, so they differ on every render.
  function markup(element) {
    return element.innerHTML.replace(/name="csrf_token" value="[^"]*"/g, "");
  }

  // Replace the content of each part whose markup changed; returns true if a part that matters changed.
  function apply(fresh) {
    const current = panel();
    let changed = false;
    for (const part of fresh.querySelectorAll("[data-part]")) {
      const old = current.querySelector('[data-part="' + part.dataset.part + '"]');
      if (!old) continue;
      if (markup(old) !== markup(part)) {
        old.replaceChildren(...Array.from(part.childNodes, (node) => document.importNode(node, true)));
        if (!part.hasAttribute("data-volatile")) changed = true;
      }
      old.className = part.className;
      old.hidden = part.hidden;
    }
    for (const name of ["status", "terminal", "title"]) current.dataset[name] = fresh.dataset[name];
    document.title = fresh.dataset.title;
    return changed;
  }

  async function poll() {
    timer = null;
    inFlight = true;
    try {
      const response = await fetch(root.dataset.panelUrl, {headers: {Accept: "text/html"}, cache: "no-store"});
      if (response.status === 404) {
        inFlight = false;
        say("This job no longer exists: it expired or was deleted.");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("panel");
      if (!fresh) throw new Error("no panel in the response");
      say("");
      const changed = apply(fresh);
      if (fresh.dataset.terminal === "true") {
        inFlight = false;
        return;
      }
      delay = changed ? FAST : Math.min(delay * 1.5, SLOW);
    } catch (error) {
      say("Lost contact with the server; retrying…");
      delay = Math.min(Math.max(delay, FAST) * 2, OFFLINE);
    }
    inFlight = false;
    schedule();
  }

  function schedule() {
    if (!document.hidden) timer = setTimeout(poll, delay);
  }

  // A hidden tab does not poll; coming back checks at once.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || panel().dataset.terminal === "true") return;
    if (timer === null && !inFlight) {
      delay = FAST;
      poll();
    }
  });

  if (panel().dataset.terminal !== "true") schedule();
})();
