// The runs view, live. The agent's stream of every run's events (relayed by this
// service for the signed-in reviewer) tells the page *that* something changed; the
// page then re-reads its live part from this service (server-rendered, escaped), at
// most a few times a second. Forms sit outside the replaced parts, so typing is never lost.
"use strict";

function follow(container, url, source, wanted) {
  let pending = null;
  const reload = async () => {
    pending = null;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    container.innerHTML = await response.text();
    container.dataset.updated = String(Date.now());
    const live = document.getElementById("live");
    if (live) live.textContent = "Updated.";
  };
  const soon = () => { if (!pending) pending = setTimeout(reload, 250); };
  source.addEventListener("run", (event) => { if (wanted(JSON.parse(event.data))) soon(); });
  // On every (re)connection: what happened before the stream was open is read again.
  source.addEventListener("open", soon);
}

document.addEventListener("DOMContentLoaded", () => {
  if (!window.EventSource) return;
  const board = document.getElementById("board");
  if (board) follow(board, board.dataset.board, new EventSource(board.dataset.events), () => true);
  const article = document.querySelector("article.run[data-events]");
  if (article) {
    const body = document.getElementById("run-body");
    const mine = (data) => data.run_id === article.dataset.run;
    follow(body, article.dataset.body, new EventSource(article.dataset.events), mine);
  }
});
