// The empty state's DOM side (emptystate.js decides what it says): a note laid over a chart's
// card while the chart has nothing to draw, and the card marked data-empty so the stylesheet
// hides Plotly's default axes underneath.

/** @typedef {import("./emptystate.js").EmptyState} EmptyState */

export class EmptyOverlay {
  /** @param {HTMLElement|null} card  the element holding the chart (gets data-empty) */
  constructor(card) {
    this.card = card;
    this.note = null;
    if (!card) return;
    this.note = document.createElement("div");
    this.note.className = "chart-empty";
    this.note.setAttribute("role", "status");
    this.title = document.createElement("p");
    this.title.className = "chart-empty-title";
    this.detail = document.createElement("p");
    this.detail.className = "chart-empty-detail";
    this.note.append(this.title, this.detail);
    card.append(this.note);
    this.show({ title: "Waiting for the first point", detail: "", state: "unknown" });
  }

  /** @param {EmptyState|null} state  null: the chart has points, no overlay */
  show(state) {
    if (!this.card || !this.note || !this.title || !this.detail) return;
    // Written only when they change: a dashboard calls this after every draw of every panel,
    // and each write would have the style of the card worked out again.
    const empty = String(state !== null);
    if (this.card.dataset.empty !== empty) this.card.dataset.empty = empty;
    if (this.note.hidden !== (state === null)) this.note.hidden = state === null;
    if (state === null) return;
    if (this.note.dataset.state !== state.state) this.note.dataset.state = state.state;
    if (this.title.textContent !== state.title) this.title.textContent = state.title;
    if (this.detail.textContent !== state.detail) this.detail.textContent = state.detail;
  }
}
