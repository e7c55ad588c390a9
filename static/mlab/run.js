// The run page follows its run: status, stage, progress bar and new log lines, every 1.5 s, from the API
// (session-authenticated). When the run ends the page reloads once to show metrics and charts.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("mlab-run");
  if (!root || ["succeeded", "failed", "cancelled"].includes(root.dataset.status)) return;
  const log = document.getElementById("mlab-run-log");
  const seen = () => Math.max(0, ...[...log.querySelectorAll("tr[data-id]")].map((r) => Number(r.dataset.id)));
  const refresh = async () => {
    let run;
    try {
      const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return schedule();
      run = await response.json();
    } catch (error) {
      return schedule();
    }
    document.getElementById("mlab-run-status").textContent = run.status;
    document.getElementById("mlab-run-status").className = `mlab-status mlab-status-${run.status}`;
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
