// Admin forms of streams and dashboards: the feed settings editor (the chosen kind's keys beside
// the box, starter settings per kind, "Test these settings" in place), durations in words, number
// inputs as wide as their values, and dashboard panels that show only the fields of their type.
// A module (admin's form media, type="module"): it runs once the document is parsed.

import { durationWords } from "./duration.js";

function sizeNumber(input) {
  // Every digit visible, and room for the spin buttons (as SizedNumberInput renders it).
  input.style.width = `${Math.max(6, input.value.length) + 4}ch`;
}

function numbers(root) {
  for (const input of root.querySelectorAll("input.lc-number")) {
    sizeNumber(input);
  }
}

document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || !input.classList.contains("lc-number")) return;
  sizeNumber(input);
  const words = input.nextElementSibling;
  if (words && words.classList.contains("lc-duration")) words.textContent = durationWords(input.value);
});

// Feed settings.

function normalised(text) {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return null;
  }
}

function feedEditor() {
  const kind = document.getElementById("id_feed_kind");
  const box = document.getElementById("id_feed_settings");
  const startersNode = document.getElementById("lc-feed-starters");
  if (!kind || !box || !startersNode) return;
  const starters = JSON.parse(startersNode.textContent);
  let shown = kind.value;

  kind.addEventListener("change", () => {
    for (const section of document.querySelectorAll(".lc-kind-help")) {
      section.hidden = section.dataset.kind !== kind.value;
    }
    // Settings left empty, or as the last kind's starter, become the new kind's starter;
    // anything the operator typed stays.
    const current = normalised(box.value.trim() || "{}");
    if (current === "{}" || current === normalised(starters[shown] || "{}")) {
      box.value = starters[kind.value] || "{}";
    }
    shown = kind.value;
  });

  const button = document.querySelector("button.lc-test-feed");
  const panel = document.querySelector(".lc-probe-result");
  if (!button || !panel) return;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    panel.hidden = false;
    panel.dataset.state = "testing";
    panel.textContent = "Testing: connecting with the settings in this form (up to 30 s)…";
    try {
      const response = await fetch(button.formAction, {
        method: "POST",
        body: new FormData(button.form),
        credentials: "same-origin",
      });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const result = page.getElementById("probe-result");
      panel.replaceChildren();
      if (response.ok && result) {
        panel.append(...result.childNodes);
      } else {
        const note = document.createElement("p");
        note.className = "errornote";
        note.textContent = `Could not test: HTTP ${response.status} ${response.statusText}`;
        panel.append(note);
      }
    } catch (error) {
      panel.textContent = `Could not test: ${error}`;
    } finally {
      panel.dataset.state = "done";
      button.disabled = false;
    }
  });
}

// Dashboard panels: each chart type's own fields only.

const ONLY_FOR = { candle_seconds: "candlestick", gauge_min: "gauge", area_fill: "area" };

function panelFields(select) {
  const panel = select.closest(".inline-related");
  if (!panel) return;
  for (const [field, type] of Object.entries(ONLY_FOR)) {
    const row = panel.querySelector(`.form-row.field-${field}`);
    // A row holding an error stays visible whatever the type, so the error is seen.
    if (row) row.hidden = select.value !== type && !row.querySelector(".errorlist");
  }
}

function panels(root) {
  for (const select of root.querySelectorAll("select[name$='-chart_type']")) panelFields(select);
}

// Viewers and groups apply to restricted streams and dashboards only.
function accessFields() {
  const visibility = document.querySelector("select[name=visibility]");
  if (!visibility) return;
  for (const field of ["viewers", "viewer_groups"]) {
    const row = document.querySelector(`.form-row.field-${field}`);
    if (row) row.hidden = visibility.value !== "restricted" && !row.querySelector(".errorlist");
  }
}

document.addEventListener("change", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLSelectElement)) return;
  if (target.name.endsWith("-chart_type")) panelFields(target);
  if (target.name === "visibility") accessFields();
});
document.addEventListener("formset:added", (event) => panels(event.target));

numbers(document);
feedEditor();
panels(document);
accessFields();
