// The split editor's running total. Without JavaScript the form still works; the server checks the sum.
document.addEventListener("DOMContentLoaded", () => {
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
});

// While a saved revision is being published (by a worker), the page follows it: it fetches itself every
// second and replaces the parts that show publication (live shares, the published config, the history),
// never the split editor, where the user may be typing. It stops once the revision is live.
document.addEventListener("DOMContentLoaded", () => {
  const scene = document.getElementById("mlab-scene");
  if (!scene?.dataset.publishing) return;
  const followed = ["versions", "published", "history"];
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
    for (const id of followed) {
      const current = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (current && replacement) current.replaceWith(document.importNode(replacement, true));
    }
    const freshScene = fresh.getElementById("mlab-scene");
    if (freshScene?.dataset.publishing && Date.now() < giveUp) {
      scene.dataset.publishing = freshScene.dataset.publishing;
      setTimeout(follow, 1000);
    } else {
      delete scene.dataset.publishing;
    }
  };
  setTimeout(follow, 1000);
});
