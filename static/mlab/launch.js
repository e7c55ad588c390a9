// The Launch page.
// 1. Tabs: one per parameter group (fields, parameters, tuning) in each node. Without JavaScript every
//    panel shows, one under the other.
// 2. With a data source chosen, the sample's column pickers offer only the columns of the chosen tables,
//    and filters and joins are edited as rows of pickers. The rows write the same JSON the plain textarea
//    posts, so the server sees one format either way.
// 3. Columns pickers (checkboxes): a filter box, the count of ticked columns, and the ticked ones listed on
//    top; a column another field of the node has chosen (the label) is not offered.
// 4. After a submission with errors, the first error's tab opens and the page scrolls to it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("mlab-js");
  setUpTabs();
  setUpSourcePicker();
  for (const picker of document.querySelectorAll(".mlab-columns")) setUpColumnsPicker(picker);
  const schemaNode = document.getElementById("mlab-schema");
  if (schemaNode) {
    const tables = JSON.parse(schemaNode.textContent);
    const operators = JSON.parse(document.getElementById("mlab-operators").textContent);
    for (const node of document.querySelectorAll(".mlab-node")) setUpSample(node, tables, operators);
  }
});

function setUpTabs() {
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
  // Bring the first error into view: a field's own, else the form's.
  const firstError = document.querySelector(".mlab-node .form-row.errors") || document.querySelector("#mlab-launch-form .errornote");
  if (firstError) {
    firstError.scrollIntoView({ block: "center" });
    const input = firstError.querySelector("input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])");
    if (input) input.focus({ preventScroll: true });
  }
}

// A columns picker: ticking moves a column to the "selected" list on top, unticking puts it back under its
// table in its place; the filter hides columns whose name does not match; the count follows.
function setUpColumnsPicker(picker) {
  const selected = picker.querySelector("[data-role=selected]");
  const none = picker.querySelector(".mlab-columns-none");
  const count = picker.querySelector(".mlab-columns-count strong");
  const filter = picker.querySelector(".mlab-columns-filter");
  const tableBox = (name) => picker.querySelector(`.mlab-columns-table[data-table="${CSS.escape(name)}"]`);
  const update = () => {
    const ticked = picker.querySelectorAll("input[type=checkbox]:checked").length;
    count.textContent = String(ticked);
    none.hidden = ticked > 0;
  };
  const place = (label) => {
    const box = label.querySelector("input").checked ? selected : tableBox(label.dataset.table);
    if (!box) return; // a ticked column the source does not offer stays on top
    if (box === selected) {
      selected.insertBefore(label, none);
      return;
    }
    const index = Number(label.dataset.index);
    const after = [...box.querySelectorAll(".mlab-column")].find((other) => Number(other.dataset.index) > index);
    box.insertBefore(label, after || null);
  };
  picker.addEventListener("change", (event) => {
    if (event.target.type !== "checkbox") return;
    place(event.target.closest(".mlab-column"));
    update();
  });
  filter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault(); // filtering, not submitting the form
  });
  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const label of picker.querySelectorAll(".mlab-columns-table .mlab-column")) {
      label.classList.toggle("mlab-filtered-out", needle !== "" && !label.textContent.toLowerCase().includes(needle));
    }
  });
  update();
}

function setUpSourcePicker() {
  const picker = document.getElementById("id_datasource");
  if (!picker) return;
  for (const button of document.querySelectorAll(".mlab-load-source")) button.hidden = true;
  picker.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("datasource", picker.value);
    window.location.assign(url.toString());
  });
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function options(select, values, current, blank) {
  select.replaceChildren();
  if (blank) select.appendChild(el("option", { value: "", text: "—" }));
  for (const [value, label] of values) select.appendChild(el("option", { value, text: label }));
  if (current !== undefined && current !== null && current !== "" && !values.some(([v]) => v === current)) {
    select.appendChild(el("option", { value: current, text: `${current} (not available)` }));
  }
  select.value = current ?? "";
}

// One sample node: the table picker, the joins rows, and the column pickers that depend on both.
function setUpSample(node, tables, operators) {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const tableField = node.querySelector('[data-picker="table"]');
  const joinsField = node.querySelector('textarea[data-rows="joins"]');
  const filtersField = node.querySelector('textarea[data-rows="conditions"]');
  if (!tableField) return;

  const readJson = (field) => {
    try {
      const value = JSON.parse(field.value || "[]");
      return Array.isArray(value) ? value : [];
    } catch {
      return [];
    }
  };
  let joins = joinsField ? readJson(joinsField) : [];
  let filters = filtersField ? readJson(filtersField) : [];

  const chosenTables = () => [tableField.value, ...joins.map((j) => j.table)].filter((t) => byName.has(t));
  const columnsOfChosen = () => {
    const seen = new Map();
    for (const name of chosenTables()) {
      for (const column of byName.get(name).columns) if (!seen.has(column.name)) seen.set(column.name, column);
    }
    return [...seen.values()];
  };

  // Column pickers: show only the columns of the chosen tables (plus presets missing from the source), and
  // not the column a sibling field names (a feature picker leaves out the label).
  const filterPickers = () => {
    const chosen = new Set(chosenTables());
    for (const select of node.querySelectorAll('select[data-picker="column"]')) {
      for (const group of select.querySelectorAll("optgroup")) {
        const visible = chosen.has(group.label) || !byName.has(group.label);
        group.hidden = !visible;
        group.disabled = !visible && !select.disabled;
      }
    }
    for (const picker of node.querySelectorAll(".mlab-columns")) {
      for (const box of picker.querySelectorAll(".mlab-columns-table")) box.hidden = !chosen.has(box.dataset.table);
      const prefix = picker.dataset.name.split("__")[0];
      const taken = (picker.dataset.excludes || "").split(" ").filter(Boolean)
        .map((name) => node.querySelector(`[name="${prefix}__${name}"]`)?.value).filter(Boolean);
      for (const label of picker.querySelectorAll(".mlab-columns-table .mlab-column")) {
        label.hidden = taken.includes(label.querySelector("input").value);
      }
    }
  };

  const joinsEditor = joinsField && !joinsField.disabled ? rowsEditor(joinsField, "Add a joined table") : null;
  const filtersEditor = filtersField && !filtersField.disabled ? rowsEditor(filtersField, "Add a filter") : null;

  const renderJoins = () => {
    if (!joinsEditor) return;
    joinsEditor.render(joins, (join, update) => {
      const table = el("select", { class: "mlab-join-table", "aria-label": "Joined table" });
      options(table, tables.filter((t) => t.name !== tableField.value).map((t) => [t.name, t.name]), join.table, true);
      const on = el("select", { class: "mlab-join-on", "aria-label": "Join key" });
      const fillKeys = () => {
        const fact = byName.get(tableField.value);
        const other = byName.get(table.value);
        const keys = fact && other ? other.columns.filter((c) => fact.columns.some((f) => f.name === c.name)) : [];
        options(on, keys.map((c) => [c.name, c.name]), join.on, true);
      };
      fillKeys();
      table.addEventListener("change", () => {
        join.table = table.value;
        fillKeys();
        join.on = on.value;
        update();
      });
      on.addEventListener("change", () => {
        join.on = on.value;
        update();
      });
      return [table, el("span", { text: " on " }), on];
    }, () => ({ table: "", on: "" }));
  };

  const renderFilters = () => {
    if (!filtersEditor) return;
    const columns = columnsOfChosen();
    filtersEditor.render(filters, (condition, update) => {
      const column = el("select", { class: "mlab-filter-column", "aria-label": "Column" });
      options(column, columns.map((c) => [c.name, `${c.name} · ${c.type}`]), condition.column, true);
      const op = el("select", { class: "mlab-filter-op", "aria-label": "Operator" });
      options(op, operators.map((o) => [o, o]), condition.op || "=", false);
      const value = el("input", { type: "text", class: "mlab-filter-value", "aria-label": "Value" });
      value.value = displayValue(condition.value);
      const sync = () => {
        const kind = (columns.find((c) => c.name === column.value) || {}).kind;
        condition.column = column.value;
        condition.op = op.value;
        value.hidden = op.value === "is null" || op.value === "is not null";
        value.placeholder = ["in", "not in"].includes(op.value) ? "a, b, c" : op.value === "between" ? "low, high" : "";
        if (value.hidden) delete condition.value;
        else condition.value = typedValue(value.value, op.value, kind);
        update();
      };
      for (const input of [column, op, value]) input.addEventListener("change", sync);
      value.addEventListener("input", sync);
      value.hidden = op.value === "is null" || op.value === "is not null";
      return [column, op, value];
    }, () => ({ column: "", op: "=", value: "" }));
  };

  const refresh = () => {
    filterPickers();
    renderFilters();
  };
  for (const select of node.querySelectorAll('select[data-picker="column"]')) select.addEventListener("change", filterPickers);
  tableField.addEventListener("change", () => {
    joins = joins.filter((j) => j.table !== tableField.value);
    if (joinsField) joinsField.value = JSON.stringify(joins);
    renderJoins();
    refresh();
  });
  if (joinsEditor) joinsEditor.onChange = (rows) => {
    joins = rows;
    refresh();
  };
  if (filtersEditor) filtersEditor.onChange = (rows) => {
    filters = rows;
  };
  renderJoins();
  refresh();
}

// Rows of inputs standing in for a JSON textarea (which stays in the form, hidden, and is what posts).
function rowsEditor(textarea, addLabel) {
  const box = el("div", { class: "mlab-rows", "data-for": textarea.name });
  const list = el("div", { class: "mlab-rows-list" });
  const add = el("button", { type: "button", class: "button mlab-row-add", text: addLabel });
  box.append(list, add);
  textarea.after(box);
  textarea.classList.add("mlab-rows-source");
  const editor = { onChange: null };
  let rows = [];
  let makeRow = null;
  let blank = null;
  const write = () => {
    const kept = rows.filter((r) => Object.values(r).some((v) => v !== "" && v !== undefined));
    textarea.value = kept.length ? JSON.stringify(kept) : "[]";
    if (editor.onChange) editor.onChange(kept);
  };
  const draw = () => {
    list.replaceChildren();
    rows.forEach((row, index) => {
      const remove = el("button", { type: "button", class: "mlab-row-remove", "aria-label": "Remove", text: "×" });
      remove.addEventListener("click", () => {
        rows.splice(index, 1);
        write();
        draw();
      });
      list.appendChild(el("div", { class: "mlab-row" }, [...makeRow(row, write), remove]));
    });
  };
  add.addEventListener("click", () => {
    rows.push(blank());
    draw();
  });
  editor.render = (values, rowFactory, blankFactory) => {
    rows = values.map((v) => ({ ...v }));
    makeRow = rowFactory;
    blank = blankFactory;
    draw();
  };
  return editor;
}

function displayValue(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

// Text typed in a filter row → the JSON value the server expects for the column's kind.
function typedValue(text, op, kind) {
  const one = (part) => {
    const t = part.trim();
    if (kind === "number" && t !== "" && !Number.isNaN(Number(t))) return Number(t);
    if (kind === "boolean" && ["true", "false"].includes(t.toLowerCase())) return t.toLowerCase() === "true";
    return t;
  };
  if (["in", "not in", "between"].includes(op)) return text.split(",").filter((p) => p.trim() !== "").map(one);
  return op === "like" ? text : one(text);
}
