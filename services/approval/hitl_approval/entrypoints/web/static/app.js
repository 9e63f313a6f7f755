// Progressive enhancement for the reviewer page: live countdowns and live updates
// over Server-Sent Events. Without JavaScript every page still works; it just does
// not change by itself.
"use strict";

function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return s ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-until]")) {
    const left = (Date.parse(el.dataset.until) - now) / 1000;
    el.textContent = left <= 0 ? "expired" : duration(left);
    el.closest(".countdown")?.classList.toggle("urgent", left < 300);
  }
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
  }
}

function announce(text) {
  const live = document.getElementById("live");
  if (live) live.textContent = text;
}

function liveQueue(table) {
  const body = document.getElementById("queue-body");
  const count = document.getElementById("queue-count");
  const since = encodeURIComponent(table.dataset.signature);
  const source = new EventSource(`${table.dataset.events}&since=${since}`);
  source.addEventListener("queue", async () => {
    const before = new Set([...body.querySelectorAll("tr[data-id]")].map((r) => r.dataset.id));
    const response = await fetch(table.dataset.rows, { credentials: "same-origin" });
    if (!response.ok) return;
    body.innerHTML = await response.text();
    const n = response.headers.get("X-Queue-Count");
    if (n !== null) count.textContent = n;
    let added = 0;
    for (const row of body.querySelectorAll("tr[data-id]")) {
      if (!before.has(row.dataset.id)) { row.classList.add("fresh"); added++; }
    }
    announce(`Queue updated: ${n} shown${added ? `, ${added} new` : ""}.`);
    tick();
  });
}

function liveApproval(article) {
  const source = new EventSource(article.dataset.events);
  source.addEventListener("changed", async (event) => {
    const data = JSON.parse(event.data);
    const banner = document.getElementById("live-banner");
    const status = document.getElementById("status");
    if (status) {
      status.textContent = data.status;
      status.className = `status status-${data.status}`;
    }
    if (data.status !== "pending") {
      banner.textContent = `Decided elsewhere while you were looking: ${data.message}`;
      for (const b of document.querySelectorAll("#decide button")) b.disabled = true;
      source.close();
    } else {
      banner.textContent = data.message;
    }
    banner.hidden = false;
    const response = await fetch(article.dataset.history, { credentials: "same-origin" });
    if (response.ok) document.getElementById("history").innerHTML = await response.text();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const table = document.querySelector("table.queue[data-events]");
  if (table && window.EventSource) liveQueue(table);
  const article = document.querySelector("article.approval[data-events]");
  const decided = document.getElementById("decision") || document.getElementById("conflict");
  if (article && window.EventSource && !decided) liveApproval(article);
});
