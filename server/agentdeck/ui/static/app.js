// agentdeck dashboard: place the server's live fragments, show ages, fill in reply ids.
// Every fragment arrives already escaped by the server's templates; nothing here builds HTML.
"use strict";

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d";
}

function times() {
  const now = Date.now();
  document.querySelectorAll("time[data-age]").forEach((t) => {
    if (t.dateTime) t.textContent = ago(now - Date.parse(t.dateTime)) + " ago";
  });
  document.querySelectorAll("time[data-until]").forEach((t) => {
    const left = Date.parse(t.dateTime) - now;
    t.textContent = left >= 0 ? "in " + ago(left) : "expired " + ago(-left) + " ago";
  });
}

function live() {
  const url = document.body.dataset.live;
  const state = document.getElementById("live-state");
  if (!url) return;
  const source = new EventSource(url);
  source.onopen = () => { state.textContent = "live"; state.className = "live-state on"; };
  source.onerror = () => { state.textContent = "reconnecting…"; state.className = "live-state off"; };
  source.onmessage = (event) => {
    const update = JSON.parse(event.data);
    const target = document.getElementById(update.target);
    if (!target) return;
    if (update.mode === "append") {
      const follow = target.scrollTop + target.clientHeight >= target.scrollHeight - 4;
      const seen = target.lastElementChild ? Number(target.lastElementChild.dataset.seq) : 0;
      const incoming = document.createElement("template");
      incoming.innerHTML = update.html;
      incoming.content.querySelectorAll("[data-seq]").forEach((line) => {
        if (Number(line.dataset.seq) > seen) target.appendChild(line);
      });
      if (follow) target.scrollTop = target.scrollHeight;
    } else {
      target.innerHTML = update.html;
    }
    times();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-reply]");
  if (!button) return;
  const field = document.getElementById("reply_to");
  if (field) { field.value = button.dataset.reply; document.getElementById("post-body").focus(); }
});

document.addEventListener("DOMContentLoaded", () => { times(); setInterval(times, 1000); live(); });
