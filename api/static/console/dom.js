// Building the page from data without innerHTML (titles and reasons are data, never markup),
// and formatting numbers and event times.

/** h("div", {class: "card", onclick: f, dataset: {id: 1}}, child, "text", [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children) if (c) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const dash = "—";

export function num(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return dash;
  return Number(v).toLocaleString("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

export function pct(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return dash;
  return `${(v * 100).toFixed(digits)}%`;
}

export function signedPct(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return dash;
  const p = (v * 100).toFixed(digits);
  return `${v > 0 ? "+" : ""}${p} pp`;
}

export function ms(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return dash;
  const v = seconds * 1000;
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
}

/** An event time (Unix seconds) as a UTC date and time: event time is the engine's time. */
export function when(ts) {
  if (!ts) return dash;
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

/** How long before `now` (both event time, seconds). */
export function ago(ts, now) {
  if (!ts) return dash;
  const d = Math.max(0, (now || ts) - ts);
  if (d < 60) return "just now";
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  if (d < 86400 * 60) return `${Math.round(d / 86400)} d ago`;
  return `${Math.round(d / (86400 * 30))} mo ago`;
}

export function titleCase(word) {
  return word ? String(word).replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase()) : dash;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}`, role: "status" }, message);
  box.append(el);
  setTimeout(() => el.classList.add("leaving"), 3500);
  setTimeout(() => el.remove(), 4000);
}

/** A panel's message when its request fails, e.g. a key without the needed role. */
export function problem(err, what) {
  if (err && err.status === 403) return `${what}: ${err.message}.`;
  if (err && err.status === 401) return `${what}: the API key was refused; sign in again.`;
  return `${what}: ${err && err.message ? err.message : "the request failed"}.`;
}
