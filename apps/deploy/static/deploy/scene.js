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
