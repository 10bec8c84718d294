// Number, time and status formatting shared by every view (units always shown).

const nf = (digits) => new Intl.NumberFormat("en-GB", {
  minimumFractionDigits: digits, maximumFractionDigits: digits,
});
const NF = [0, 1, 2, 3, 4].map(nf);

export function num(value, digits = 2, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const text = NF[digits].format(value);
  return unit ? `${text} ${unit}` : text;
}

export function signed(value, digits = 2, unit = "") {
  if (value === null || value === undefined) return "–";
  const text = (value > 0 ? "+" : value < 0 ? "−" : "") + NF[digits].format(Math.abs(value));
  return unit ? `${text} ${unit}` : text;
}

export const mw = (v) => signed(v, 3, "MW");
export const kw = (v) => signed(v, 2, "kW");
export const hz = (v) => num(v, 3, "Hz");
export const pct = (v) => num(v, 1, "%");

// Microseconds since the epoch -> "13:45:02" (UTC) / "2026-11-24 13:45:02 UTC".
export function clock(us) {
  if (us === null || us === undefined) return "–";
  return new Date(us / 1000).toISOString().slice(11, 19);
}
export function stamp(us) {
  if (us === null || us === undefined) return "–";
  return new Date(us / 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

export function age(nowUs, us) {
  if (us === null || us === undefined) return "never";
  const s = Math.max(0, (nowUs - us) / 1e6);
  if (s < 1) return "now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// Status words -> a colour class: ok / warn / bad / idle.
const TONE = {
  PASS: "ok", APPLIED: "ok", ONLINE: "ok", OK: "ok", active: "ok",
  WARN: "warn", CLAMPED: "warn", DEGRADED: "warn", REDISCOVERED: "warn", pending: "warn",
  MINOR: "warn", WARNING: "warn", EMPTY: "idle",
  FAIL: "bad", OVERRIDDEN: "bad", OFFLINE: "bad", FAILED: "bad", REJECTED: "bad",
  MAJOR: "bad", ERROR: "bad", FAULT: "bad",
};
export const tone = (word) => TONE[word] || "idle";

export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

export function badge(word, extra = "") {
  if (!word) return `<span class="badge idle">–</span>`;
  return `<span class="badge ${tone(word)}">${esc(word)}${extra ? " " + esc(extra) : ""}</span>`;
}

// A small element factory: h("div", {class: "x"}, "text", child).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// SiteTelemetry.mode for people: SELF_CONSUMPTION -> "self-consumption".
export function modeName(mode) {
  return mode ? mode.toLowerCase().replace("_", "-") : "–";
}
