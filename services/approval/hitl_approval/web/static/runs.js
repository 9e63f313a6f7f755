// The runs view, live: each event of the agent's run stream (relayed by this service
// for the signed-in reviewer) reloads the board, at most a few times a second.
"use strict";

function liveBoard(board) {
  let pending = null;
  const reload = async () => {
    pending = null;
    const response = await fetch(board.dataset.board, { credentials: "same-origin" });
    if (!response.ok) return;
    board.innerHTML = await response.text();
    const live = document.getElementById("live");
    if (live) live.textContent = "Runs updated.";
    board.dataset.updated = String(Date.now());
  };
  const source = new EventSource(board.dataset.events);
  source.addEventListener("run", () => { if (!pending) pending = setTimeout(reload, 250); });
  // After a reconnect, events may have been missed: reload once.
  source.addEventListener("open", () => { if (board.dataset.opened) reload(); board.dataset.opened = "1"; });
}

function liveRun(article) {
  const source = new EventSource(article.dataset.events);
  source.addEventListener("run", (event) => {
    const data = JSON.parse(event.data);
    if (data.run_id !== article.dataset.run) return;
    const banner = document.getElementById("live-banner");
    banner.textContent = `${data.type.replace("_", " ")}: now ${data.status.replace("_", " ")}. Reloading…`;
    banner.hidden = false;
    setTimeout(() => window.location.reload(), 600);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (board && window.EventSource) liveBoard(board);
  const article = document.querySelector("article.run[data-events]");
  if (article && window.EventSource) liveRun(article);
});
