// The scene page. Without JavaScript the forms still work; the server checks everything.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("mlab-js");
  setUpSplitTotals();
  setUpDetails(document);
  scrollToSplitErrors();
  followPublication();
});

// The split editor's running total.
function setUpSplitTotals() {
  for (const form of document.querySelectorAll(".mlab-split-form")) {
    const output = form.querySelector(".mlab-split-total");
    const inputs = form.querySelectorAll("input.mlab-weight");
    const update = () => {
      let total = 0;
      for (const input of inputs) total += Number.parseInt(input.value || "0", 10) || 0;
      output.textContent = total === 100 ? "100" : `${total} (must be 100)`;
      output.classList.toggle("mlab-bad", total !== 100);
    };
    for (const input of inputs) input.addEventListener("input", update);
    update();
  }
}

// Each version's details row opens under it.
function setUpDetails(root) {
  for (const button of root.querySelectorAll(".mlab-details-toggle")) {
    button.addEventListener("click", () => {
      const row = document.getElementById(button.getAttribute("aria-controls"));
      const open = !row.classList.contains("open");
      row.classList.toggle("open", open);
      button.setAttribute("aria-expanded", String(open));
      button.textContent = open ? "hide" : "details";
    });
  }
}

// A refused split: bring its errors into view, in the split editor.
function scrollToSplitErrors() {
  const error = document.querySelector("#split-editor .errornote, #split-editor .errorlist");
  if (!error) return;
  error.scrollIntoView({ block: "center" });
  const input = error.closest("tr")?.querySelector("input") || document.querySelector("#split-editor input.mlab-weight");
  if (input) input.focus({ preventScroll: true });
}

// While a saved revision is being published (by a worker), the page follows it: it fetches itself every
// second and replaces the parts that show publication (what is live, the live shares, the results of the live
// revision, the history), never the split editor, where the user may be typing. It stops once the revision is live.
function followPublication() {
  const scene = document.getElementById("mlab-scene");
  if (!scene?.dataset.publishing) return;
  const followed = ["versions", "published", "results", "history"];
  const giveUp = Date.now() + 10 * 60 * 1000;
  const follow = async () => {
    let fresh;
    try {
      const response = await fetch(scene.dataset.url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch {
      if (Date.now() < giveUp) setTimeout(follow, 3000);
      return;
    }
    const before = document.querySelector("#published .mlab-published-revision")?.textContent;
    for (const id of followed) {
      const current = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (!current || !replacement) continue;
      const open = [...current.querySelectorAll(".mlab-version-details.open")].map((row) => row.id);
      const node = document.importNode(replacement, true);
      current.replaceWith(node);
      setUpDetails(node);
      for (const rowId of open) node.querySelector(`[aria-controls="${rowId}"]`)?.click();
    }
    // In the split editor only the "live now" column changes: what the user typed stays.
    for (const cell of document.querySelectorAll("#split-editor .mlab-live-now[data-version]")) {
      const fresher = fresh.querySelector(`#split-editor .mlab-live-now[data-version="${cell.dataset.version}"]`);
      if (fresher) cell.textContent = fresher.textContent;
    }
    const after = document.querySelector("#published .mlab-published-revision")?.textContent;
    if (after && after !== before) document.getElementById("published").classList.add("mlab-just-published");
    const freshScene = fresh.getElementById("mlab-scene");
    if (freshScene?.dataset.publishing && Date.now() < giveUp) {
      scene.dataset.publishing = freshScene.dataset.publishing;
      setTimeout(follow, 1000);
    } else {
      delete scene.dataset.publishing;
    }
  };
  setTimeout(follow, 1000);
}
