// The console's only script: the overview's light poll, confirmations that state how many rows an action takes,
// and "select all" on the dead-letter list. No framework, nothing loaded from elsewhere.
"use strict";

function pollOverview(el) {
  const url = el.dataset.poll;
  const tick = async () => {
    try {
      const reply = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (reply.redirected || !reply.ok) { return; }
      const data = await reply.json();
      for (const name of ["rate", "at_risk", "dead"]) {
        const field = document.querySelector(`[data-field="${name}"]`);
        if (field) { field.textContent = data[name]; }
      }
      for (const [target, values] of Object.entries(data.targets)) {
        const row = document.querySelector(`[data-target="${CSS.escape(target)}"]`);
        if (!row) { continue; }
        for (const [name, text] of Object.entries(values)) {
          const cell = row.querySelector(`[data-field="${name}"]`);
          if (cell) { cell.textContent = text; }
        }
      }
      const stamp = document.querySelector('[data-field="updated"]');
      if (stamp) { stamp.textContent = new Date().toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }); }
      document.body.dataset.polled = String(Number(document.body.dataset.polled || 0) + 1);
    } catch (e) {
      // the next tick tries again; the page keeps its last figures
    }
  };
  setInterval(tick, 5000);
}

function confirmCounts(form) {
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (!button || !button.dataset.confirm) { return; }
    const all = form.querySelector('input[name="scope"]:checked')?.value === "all";
    const count = all ? Number(form.dataset.total) : form.querySelectorAll('input[name="ids"]:checked').length;
    const scope = all ? "符合筛选条件的全部" : "选中的";
    if (!window.confirm(`确认${button.dataset.confirm}${scope} ${count} 条投递？`)) { event.preventDefault(); }
  });
  const all = form.querySelector("[data-check-all]");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of form.querySelectorAll('input[name="ids"]')) { box.checked = all.checked; }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const poll = document.getElementById("poll");
  if (poll) { pollOverview(poll); }
  const dead = document.getElementById("dead-letters");
  if (dead) { confirmCounts(dead); }
  for (const button of document.querySelectorAll("[data-confirm-text]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirmText)) { event.preventDefault(); }
    });
  }
});
