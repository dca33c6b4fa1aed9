// Seconds in words, as streams/admin.py duration_words says them: the two largest units.

const UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

/** "2592000" -> "30 days", "5400" -> "1 hour 30 minutes"; "" for a blank or bad value. */
export function durationWords(text) {
  if (String(text).trim() === "") return "";
  let seconds = Math.floor(Number(text));
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds === 0) return "0 seconds";
  const parts = [];
  for (const [name, size] of UNITS) {
    const count = Math.floor(seconds / size);
    seconds -= count * size;
    if (count) parts.push(`${count.toLocaleString("en-US")} ${name}${count === 1 ? "" : "s"}`);
  }
  return parts.slice(0, 2).join(" ");
}
