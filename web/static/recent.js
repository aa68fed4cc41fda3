// Keeps the badges of the home page's recent-jobs list current while any listed job is not over.
// Only badges and ages change in place (links keep their focus); polling backs off and stops when all are over.
(function () {
  "use strict";
  const FAST = 1000; // ms
  const SLOW = 8000; // ms: the cap
  let delay = FAST;
  const list = document.getElementById("recent");
  if (!list || list.dataset.active !== "true") return;

  function update(fresh) {
    let changed = false;
    for (const item of fresh.querySelectorAll("li[data-job]")) {
      const old = list.querySelector('li[data-job="' + item.dataset.job + '"]');
      if (!old) continue;
      for (const selector of [".badge", "time"]) {
        const before = old.querySelector(selector);
        const after = item.querySelector(selector);
        if (!before || !after) continue;
        if (selector === ".badge" && before.textContent !== after.textContent) changed = true;
        before.textContent = after.textContent;
        before.className = after.className;
      }
    }
    return changed;
  }

  async function poll() {
    try {
      const response = await fetch(list.dataset.url, {headers: {Accept: "text/html"}, cache: "no-store"});
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.getElementById("recent");
        if (fresh) {
          delay = update(fresh) ? FAST : Math.min(delay * 1.5, SLOW);
          if (fresh.dataset.active !== "true") return;
        }
      } else {
        delay = Math.min(delay * 2, SLOW);
      }
    } catch (error) {
      delay = Math.min(delay * 2, SLOW); // the server is unreachable: try again later
    }
    setTimeout(poll, delay);
  }

  setTimeout(poll, delay);
})();
