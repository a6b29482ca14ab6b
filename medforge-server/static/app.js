// MedForge's own script. The pages work without it; with it:
// - a session's page follows the progress event stream and opens the IDE
//   as soon as the session runs;
// - the dashboard refreshes its sessions table (and the live GPU card of a
//   running session) without reloading the page: every 2 s while one is
//   starting or stopping (at once on each progress event), at each GPU
//   reading while a GPU is on show, else every 10 s (every 2 s while the
//   user waits in the queue);
// - when a GPU is offered to the user, or one of their sessions is warned
//   before an automatic stop, a browser notification says so (if the user
//   allowed notifications: joining the queue asks).
"use strict";

// What was already announced, so that each offer and warning is told once.
const announced = new Set();

function announce(section) {
  const news = [];
  for (const q of section.querySelectorAll('[data-testid="queue-status"][data-state="offered"]')) {
    news.push(["offer:" + q.dataset.exposure, q.textContent.trim()]);
  }
  for (const w of section.querySelectorAll('[data-testid="session-warning"]')) {
    news.push(["warning:" + w.textContent, w.textContent.trim()]);
  }
  for (const [key, text] of news) {
    if (announced.has(key)) continue;
    announced.add(key);
    if (window.Notification && Notification.permission === "granted") {
      try { new Notification("MedForge", { body: text.replace(/\s+/g, " ") }); } catch (_) { /* not in this browser */ }
    }
  }
}

function followProgress(panel) {
  const url = panel.dataset.eventsUrl;
  if (!url || panel.dataset.status !== "starting" || !window.EventSource) return;
  const source = new EventSource(url);
  source.addEventListener("progress", (event) => {
    const p = JSON.parse(event.data);
    panel.dataset.status = p.status;
    const status = panel.querySelector('[data-testid="session-status"]');
    status.textContent = p.status;
    status.className = "status status-" + p.status;
    let open = true;
    for (const li of panel.querySelectorAll("li[data-step]")) {
      const done = p.steps.includes(li.dataset.step);
      let state = "pending";
      if (done) state = "done";
      else if (open && p.status === "starting") { state = "current"; open = false; }
      else if (open && p.status === "error") { state = "failed"; open = false; }
      li.dataset.state = state;
      li.querySelector(".sr-only").textContent = " (" + state + ")";
    }
    if (p.status === "running") {
      source.close();
      const link = panel.querySelector('[data-testid="open-ide"]');
      link.classList.remove("hidden");
      window.setTimeout(() => window.location.assign(panel.dataset.ideUrl), 400);
    } else if (p.status !== "starting") {
      source.close();
      window.setTimeout(() => window.location.reload(), 400);
    }
  });
  // The stream ends when the session is no longer starting; if it drops
  // earlier, the page itself is the fallback.
  source.onerror = () => { source.close(); window.setTimeout(() => window.location.reload(), 2000); };
}

function keepDashboardFresh(section) {
  let timer = null;
  const refresh = async () => {
    try {
      const response = await fetch(window.location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("sessions");
      if (!fresh) return;
      section.innerHTML = fresh.innerHTML;
      announce(section);
      section.dataset.live = fresh.dataset.live;
      if (fresh.dataset.gpuRefresh) section.dataset.gpuRefresh = fresh.dataset.gpuRefresh;
      else delete section.dataset.gpuRefresh;
      const availability = page.querySelector('[data-testid="gpu-availability"]');
      const mine = document.querySelector('[data-testid="gpu-availability"]');
      if (availability && mine) mine.textContent = availability.textContent;
      const gpus = page.getElementById("my-gpus");
      const myGpus = document.getElementById("my-gpus");
      if (gpus && myGpus) myGpus.innerHTML = gpus.innerHTML;
      if (fresh.dataset.events) listen(fresh.dataset.events);
    } catch (_) { /* the next tick tries again */ }
    schedule();
  };
  const schedule = () => {
    window.clearTimeout(timer);
    // Starting or stopping: every 2 s; a GPU on show: every reading; else every 10 s.
    const gpu = Number(section.dataset.gpuRefresh) || 0;
    timer = window.setTimeout(refresh, section.dataset.live ? 2000 : gpu || 10000);
  };
  const listening = new Set();
  const listen = (urls) => {
    for (const url of urls.split(" ").filter(Boolean)) {
      if (listening.has(url) || !window.EventSource) continue;
      listening.add(url);
      const source = new EventSource(url);
      source.addEventListener("progress", refresh);
      source.onerror = () => source.close();
    }
  };
  listen(section.dataset.events || "");
  // What shows at load is no news; only what appears later is announced.
  for (const q of section.querySelectorAll('[data-testid="queue-status"][data-state="offered"]')) announced.add("offer:" + q.dataset.exposure);
  for (const w of section.querySelectorAll('[data-testid="session-warning"]')) announced.add("warning:" + w.textContent);
  section.addEventListener("submit", (event) => {
    if (event.target.matches('[data-testid="join-queue-form"]') && window.Notification && Notification.permission === "default") {
      Notification.requestPermission();
    }
  });
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("progress");
  if (panel) followProgress(panel);
  const sessions = document.getElementById("sessions");
  if (sessions) keepDashboardFresh(sessions);
});
