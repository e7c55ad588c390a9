// A template's page: a click on a node of the chain picture shows that node's parameters (one panel at a time),
// and each panel has its tabs (fields, parameters, tuning). Without JavaScript every panel shows, one under
// the other, and the picture's nodes link to them.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const chain = document.getElementById("mlab-chain");
  if (!chain) return;
  document.documentElement.classList.add("mlab-js");
  const panels = chain.querySelectorAll(".mlab-chain-panel");
  const nodes = chain.querySelectorAll(".mlab-chain-node");
  const select = (key) => {
    for (const panel of panels) panel.classList.toggle("active", panel.dataset.node === key);
    for (const node of nodes) node.classList.toggle("active", node.dataset.node === key);
  };
  for (const node of nodes) {
    node.addEventListener("click", (event) => {
      event.preventDefault();
      select(node.dataset.node);
      history.replaceState(null, "", `#node-${node.dataset.node}`);
    });
    node.addEventListener("keydown", (event) => {
      if (event.key === " ") {
        event.preventDefault();
        select(node.dataset.node);
      }
    });
  }
  for (const panel of panels) {
    const tabs = panel.querySelectorAll(".mlab-tab");
    for (const tab of tabs) {
      tab.addEventListener("click", () => {
        for (const other of tabs) other.classList.toggle("active", other === tab);
        for (const body of panel.querySelectorAll(".mlab-tab-panel")) {
          body.classList.toggle("active", body.id === `tab-${tab.dataset.tab}`);
        }
      });
    }
  }
  const fromHash = window.location.hash.startsWith("#node-") ? window.location.hash.slice(6) : null;
  select(fromHash && chain.querySelector(`.mlab-chain-panel[data-node="${CSS.escape(fromHash)}"]`) ? fromHash : panels[0]?.dataset.node);
});
