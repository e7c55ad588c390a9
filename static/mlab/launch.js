// Tabs of the Launch page: one per parameter group (fields, parameters, tuning) in each node.
// Without JavaScript every panel shows, one under the other.
document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("mlab-js");
  for (const node of document.querySelectorAll(".mlab-node")) {
    const tabs = node.querySelectorAll(".mlab-tab");
    const show = (name) => {
      for (const tab of tabs) tab.classList.toggle("active", tab.dataset.tab === name);
      for (const panel of node.querySelectorAll(".mlab-tab-panel")) {
        panel.classList.toggle("active", panel.id === `tab-${name}`);
      }
    };
    for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.tab));
    // Open the first tab that holds an error, so nobody misses it.
    const withError = node.querySelector(".mlab-tab-panel .errors");
    if (withError) show(withError.closest(".mlab-tab-panel").id.replace(/^tab-/, ""));
  }
});
