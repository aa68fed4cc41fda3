// Keeps the job page current: polls the API with backoff and updates the page in place.
(function () {
  "use strict";
  const TERMINAL = new Set(["finished", "failed", "canceled", "stopped"]);
  const root = document.getElementById("job");
  if (!root) return;
  let delay = 300;

  function text(id, value) {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function render(job) {
    root.dataset.status = job.status;
    const status = document.getElementById("status");
    status.textContent = job.status;
    status.className = "badge badge-" + job.status;

    const progress = document.getElementById("progress");
    const bar = document.getElementById("progress-bar");
    if (job.progress && !TERMINAL.has(job.status)) {
      progress.hidden = false;
      if (job.progress.total) {
        bar.max = job.progress.total;
        bar.value = job.progress.bytes;
      } else {
        bar.removeAttribute("value"); // indeterminate
      }
      text("progress-text", job.progress.stage + ": " + job.progress.bytes + " bytes");
    } else {
      progress.hidden = true;
    }

    const error = document.getElementById("error");
    error.hidden = !job.error;
    if (job.error) error.textContent = job.error.type + ": " + job.error.message;

    if (job.result) {
      document.getElementById("result").hidden = false;
      text("total-words", job.result.total_words);
      text("unique-words", job.result.unique_words);
      const body = document.getElementById("top-words");
      body.replaceChildren(...job.result.top_words.map(function (row) {
        const tr = document.createElement("tr");
        for (const value of [row.word, row.count]) {
          const td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        }
        return tr;
      }));
    }
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.jobUrl, {headers: {Accept: "application/json"}});
      if (response.ok) {
        const job = await response.json();
        render(job);
        if (TERMINAL.has(job.status)) return;
      }
    } catch (e) {
      // Network hiccup: keep polling, with backoff.
    }
    delay = Math.min(delay * 1.5, 5000);
    setTimeout(poll, delay);
  }

  if (!TERMINAL.has(root.dataset.status)) setTimeout(poll, delay);
})();
