// Hand-drawn SVG charts: a time-series line chart with axes and a sparkline.

import { h, s } from "./dom.js";

export const PALETTE = ["#4f46e5", "#0891b2", "#d97706", "#059669", "#db2777", "#7c3aed"];

const W = 640;
const PAD = { left: 52, right: 14, top: 12, bottom: 26 };

function extent(series, pick) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const sr of series) {
    for (const p of sr.points) {
      const v = pick(p);
      if (v === null || v === undefined || Number.isNaN(v)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return [lo, hi];
}

function clock(t) {
  return new Date(t).toTimeString().slice(0, 8);
}

/** Tick values spread evenly over [lo, hi] at a round step, and the decimals that step needs. */
function ticks(lo, hi, n = 4) {
  const raw = (hi - lo) / n || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw) || raw;
  const out = [];
  for (let i = Math.floor(lo / step); i * step <= hi + step * 1e-9; i++) out.push(i * step);
  return { values: out, decimals: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

/**
 * series: [{name, color, points: [[t_ms, value], …]}]; opts: {height, format(value, decimals),
 * min, max, id, title, legend}.
 * Gaps (null values) break the line.
 */
export function lineChart(series, opts = {}) {
  const H = opts.height || 200;
  const fmt = opts.format || ((v) => String(v));
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": opts.label || "chart",
  });
  const [t0, t1] = extent(series, (p) => p[0]);
  let [lo, hi] = extent(series, (p) => p[1]);
  const points = series.reduce((n, sr) => n + sr.points.filter((p) => p[1] !== null).length, 0);
  if (points < 2 || !Number.isFinite(t0)) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" },
      "Collecting samples…"));
    return wrap(svg, series, opts);
  }
  if (opts.min !== undefined) lo = Math.min(lo, opts.min);
  if (opts.max !== undefined) hi = Math.max(hi, opts.max);
  if (hi - lo < 1e-9) { hi += Math.abs(hi) * 0.1 || 1; lo -= Math.abs(lo) * 0.1 || (opts.min === 0 ? 0 : 1); }
  const { values: ys, decimals } = ticks(lo, hi);
  lo = Math.min(lo, ys[0]);
  hi = Math.max(hi, ys[ys.length - 1]);
  const span = Math.max(1, t1 - t0);
  const x = (t) => PAD.left + ((t - t0) / span) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  for (const v of ys) {
    svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, fmt(v, decimals)));
  }
  for (const t of [t0, t0 + span / 2, t1]) {
    svg.append(s("text", { x: x(t), y: H - 8, "text-anchor": t === t0 ? "start" : t === t1 ? "end" : "middle", class: "axis" }, clock(t)));
  }
  series.forEach((sr, i) => {
    const color = sr.color || PALETTE[i % PALETTE.length];
    let d = "";
    let pen = false;
    let last = null;
    for (const [t, v] of sr.points) {
      if (v === null || v === undefined || Number.isNaN(v)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      last = [t, v];
    }
    if (!d) return;
    svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "line",
      "stroke-linejoin": "round", "data-series": sr.name }));
    if (last) svg.append(s("circle", { cx: x(last[0]), cy: y(last[1]), r: 3.2, fill: color }));
  });
  return wrap(svg, series, opts);
}

function wrap(svg, series, opts) {
  return h("figure", { class: "chart-box", id: opts.id },
    opts.title ? h("figcaption", {}, opts.title) : null,
    series.length > 1 || opts.legend
      ? h("div", { class: "legend" }, series.map((sr, i) => {
        const swatch = h("i", {});
        swatch.style.background = sr.color || PALETTE[i % PALETTE.length];
        return h("span", {}, swatch, sr.name);
      }))
      : null,
    svg);
}

/** A small trend line for a table cell. */
export function sparkline(values, color = PALETTE[0]) {
  const w = 90;
  const hgt = 24;
  const vs = values.filter((v) => v !== null && v !== undefined && !Number.isNaN(v));
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, class: "spark", width: w, height: hgt });
  if (vs.length < 2) return svg;
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  const k = hi - lo || 1;
  const pts = vs.map((v, i) => `${((i / (vs.length - 1)) * (w - 4) + 2).toFixed(1)},${(hgt - 3 - ((v - lo) / k) * (hgt - 6)).toFixed(1)}`);
  svg.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.6 }));
  return svg;
}
