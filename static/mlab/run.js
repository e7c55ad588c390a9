// The run page follows its run: status (in the heading, the banner and the summary), stage, progress bar and
// new log lines, every 1.5 s, from the API (session-authenticated). When the run ends the page reloads once to
// show metrics and charts.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("mlab-run");
  if (!root || ["succeeded", "failed", "cancelled"].includes(root.dataset.status)) return;
  const log = document.getElementById("mlab-run-log");
  const banners = JSON.parse(document.getElementById("mlab-run-banners").textContent);
  const seen = () => Math.max(0, ...[...log.querySelectorAll("tr[data-id]")].map((r) => Number(r.dataset.id)));
  const showStatus = (status, stage, progress) => {
    for (const badge of [document.getElementById("mlab-run-status"), document.querySelector("#mlab-run-title [data-role=status]")]) {
      if (!badge) continue;
      badge.textContent = status;
      badge.className = `mlab-status mlab-status-${status}`;
    }
    const banner = document.getElementById("mlab-run-banner");
    const text = status === "running" && stage ? `Training: ${stage} (${progress}%). This page follows the run by itself; no need to reload.` : banners[status];
    if (text) banner.textContent = text;
    banner.className = `mlab-banner mlab-banner-${status}`;
    document.title = document.title.replace(/\b(queued|running|succeeded|failed|cancelled)\b/, status);
    if (status !== root.dataset.status) {
      // "Run N queued." is stale once the run moved on: the banner says where it is now.
      for (const message of document.querySelectorAll("ul.messagelist")) message.remove();
      root.dataset.status = status;
    }
  };
  const refresh = async () => {
    let run;
    try {
      const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return schedule();
      run = await response.json();
    } catch (error) {
      return schedule();
    }
    showStatus(run.status, run.stage, run.progress);
    document.getElementById("mlab-run-stage").textContent = run.stage || "—";
    document.getElementById("mlab-run-progress").value = run.progress;
    document.getElementById("mlab-run-percent").textContent = `${run.progress}%`;
    const last = seen();
    for (const event of run.events.filter((e) => e.id > last)) {
      const row = log.insertRow();
      row.dataset.id = event.id;
      row.className = `mlab-log-${event.level}`;
      for (const text of [event.created_at.slice(11, 19), event.stage, event.message]) row.insertCell().textContent = text;
    }
    if (["succeeded", "failed", "cancelled"].includes(run.status)) window.location.reload();
    else schedule();
  };
  const schedule = () => window.setTimeout(refresh, 1500);
  schedule();
});
