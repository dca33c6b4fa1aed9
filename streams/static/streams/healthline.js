// Writes a described health (health.js) into a page's health line: the state tag and the
// <dd data-health="..."> cells. One writer for the stream page and the stream list's cards.

/**
 * @param {HTMLElement} line the element holding the data-health cells
 * @param {{state: string, facts: Record<string, string>, error: string}} health
 */
export function showHealthLine(line, health) {
  line.dataset.state = health.state;
  const tag = line.querySelector('[data-health="state"]');
  if (tag instanceof HTMLElement && tag.textContent !== health.state) {
    tag.textContent = health.state;
    tag.dataset.state = health.state;
  }
  // Only cells whose text changed are written: the line is redrawn every second.
  for (const [key, text] of Object.entries(health.facts)) {
    const cell = line.querySelector(`[data-health="${key}"]`);
    if (cell && cell.textContent !== text) cell.textContent = text;
  }
  const error = line.querySelector('[data-health="error"]');
  if (error) {
    error.textContent = health.error;
    error.parentElement?.toggleAttribute("hidden", !health.error);
  }
}
