// Marketing & model view: offer acceptance and uplift, model quality and drift, engine
// throughput and latency. The API answers with the figures as of now; this page samples them
// every few seconds and keeps the series in sessionStorage, so a reload keeps the history.

import { api, text } from "./api.js";
import { lineChart, PALETTE, sparkline } from "./charts.js";
import { clear, dash, h, ms, num, pct, problem, signedPct, when } from "./dom.js";
import { engineFigures, parseMetrics } from "./metrics.js";

const HISTORY = "nextbest.history";
const EVERY = "nextbest.every";
const PICKED = "nextbest.offer";
const KEEP = 720; // samples per series
const CATALOG_EVERY_MS = 60000;
const WINDOW_MS = 60000; // rates and latency over the last minute, like rate(…[1m])

function loadHistory() {
  try {
    const hst = JSON.parse(sessionStorage.getItem(HISTORY));
    if (hst && hst.v === 1) return hst;
  } catch { /* start afresh */ }
  return { v: 1, engine: [], offers: {}, models: {} };
}

function push(series, point) {
  series.push(point);
  if (series.length > KEEP) series.splice(0, series.length - KEEP);
}

export function mount(el) {
  const hist = loadHistory();
  let every = Number(sessionStorage.getItem(EVERY)) || 5000;
  let timer = null;
  let stopped = false;
  let catalog = [];
  let catalogAt = 0;
  const snaps = []; // parsed /metrics samples of the last minute
  let picked = sessionStorage.getItem(PICKED) || "";
  let pickedModel = "";
  let allOffers = false;
  let allModels = false;
  let last = { perf: {}, models: [], status: null, figures: null, errors: {} };

  const everySel = h("select", { id: "sample-every", "aria-label": "Sample every" },
    [2000, 5000, 15000, 60000].map((v) => h("option", { value: String(v), selected: v === every },
      `every ${v / 1000} s`)));
  const stamp = h("span", { class: "muted small", id: "sampled-at" }, "Sampling…");
  const engineBox = h("div", { class: "card", id: "engine" });
  const offersBox = h("div", { class: "card", id: "offers" });
  const modelsBox = h("div", { class: "card", id: "models" });
  el.append(
    h("div", { class: "toolbar card slim" },
      h("h2", { class: "grow" }, "Marketing & models"),
      stamp,
      h("label", { class: "field inline" }, "Refresh ", everySel),
      h("button", { class: "btn ghost small", type: "button", id: "clear-history", onclick: () => {
        hist.engine = []; hist.offers = {}; hist.models = {};
        save(); render();
      } }, "Clear history")),
    engineBox, offersBox, modelsBox);

  everySel.addEventListener("change", () => {
    every = Number(everySel.value);
    sessionStorage.setItem(EVERY, String(every));
    clearTimeout(timer);
    tick();
  });

  function save() {
    try { sessionStorage.setItem(HISTORY, JSON.stringify(hist)); } catch { /* full: keep in memory */ }
  }

  async function tick() {
    clearTimeout(timer);
    try { await sample(); } finally { if (!stopped) timer = setTimeout(tick, every); }
  }

  async function sample() {
    const t = Date.now();
    const errors = {};
    if (t - catalogAt > CATALOG_EVERY_MS || !catalog.length) {
      try {
        catalog = (await api("/v1/offers")).offers;
        catalogAt = t;
      } catch (err) { errors.offers = err; }
    }
    const [perfs, models, status, metrics] = await Promise.allSettled([
      performances(catalog), api("/v1/models"), api("/v1/status"), text("/metrics")]);
    if (stopped) return;
    if (perfs.status === "fulfilled") {
      last.perf = Object.fromEntries(perfs.value.map((p) => [p.offer_id, p]));
      for (const p of perfs.value) {
        hist.offers[p.offer_id] = hist.offers[p.offer_id] || [];
        push(hist.offers[p.offer_id], [t, p.acceptance_rate ?? null, p.uplift ?? null]);
      }
    } else errors.offers = perfs.reason;
    if (models.status === "fulfilled") {
      last.models = models.value.models;
      for (const m of last.models) {
        hist.models[m.name] = hist.models[m.name] || [];
        push(hist.models[m.name], [t, m.auc ?? null]);
      }
    } else errors.models = models.reason;
    last.status = status.status === "fulfilled" ? status.value : null;
    if (status.status === "rejected") errors.status = status.reason;
    if (metrics.status === "fulfilled") {
      const now = parseMetrics(metrics.value);
      snaps.push(now);
      while (snaps.length > 2 && now.at - snaps[1].at >= WINDOW_MS) snaps.shift();
      last.figures = snaps.length > 1 ? engineFigures(snaps[0], now) : null;
      if (last.figures) {
        const f = last.figures;
        push(hist.engine, [t, f.eventsPerS, f.decisionsPerS, f.p50, f.p99]);
      }
    }
    last.errors = errors;
    stamp.textContent = `Sampled ${new Date(t).toTimeString().slice(0, 8)}`;
    save();
    render();
  }

  function render() {
    renderEngine();
    renderOffers();
    renderModels();
  }

  function renderEngine() {
    const f = last.figures || {};
    const st = last.status || {};
    const series = (i) => hist.engine.map((p) => [p[0], p[i]]);
    const flow = last.status ? (st.flow_alive ? "running" : "stopped") : dash;
    clear(engineBox,
      h("div", { class: "card-head" }, h("h3", {}, "Engine"),
        h("span", { class: "muted small" },
          "rates and latency over the last minute, from this API process's /metrics; the rest from /v1/status")),
      h("div", { class: "tiles wide", id: "engine-tiles" },
        stat("Events in", f.eventsPerS === undefined ? dash : `${num(f.eventsPerS, 1)}/s`, "events-rate"),
        stat("Decisions", f.decisionsPerS === undefined ? dash : `${num(f.decisionsPerS, 1)}/s`, "decisions-rate"),
        stat("Decision p50", ms(f.p50), "p50"),
        stat("Decision p99", ms(f.p99), "p99"),
        stat("Pending events", last.status ? num(st.pending) : dash, "pending"),
        stat("Customers", last.status ? num(st.customers) : dash, "customers"),
        stat("Flow", flow, "flow", st.flow_alive === false ? "bad" : ""),
        stat("Event-time clock", last.status && st.clock ? when(st.clock).slice(11) : dash, "clock",
          "", last.status && st.clock ? when(st.clock).slice(0, 10) : "")),
      last.errors.status ? h("p", { class: "notice" }, problem(last.errors.status, "Engine status")) : null,
      h("div", { class: "charts two" },
        lineChart([
          { name: "events/s", points: series(1) },
          { name: "decisions/s", points: series(2), color: PALETTE[1] }],
        { title: "Throughput", format: (v, d) => num(v, d), min: 0, id: "throughput-chart", legend: true }),
        lineChart([
          { name: "p50", points: series(3), color: PALETTE[3] },
          { name: "p99", points: series(4), color: PALETTE[2] }],
        { title: "Decision latency", format: (v, d) => `${num(v * 1000, Math.max(0, d - 3))} ms`, min: 0, id: "latency-chart", legend: true })));
  }

  function renderOffers() {
    if (last.errors.offers && !catalog.length) {
      clear(offersBox, h("h3", {}, "Offers"), h("p", { class: "notice" }, problem(last.errors.offers, "Offers")));
      return;
    }
    const perf = last.perf;
    if (!picked || !catalog.some((o) => o.id === picked)) {
      const best = catalog.slice().sort((a, b) => ((perf[b.id] || {}).impressions || 0) - ((perf[a.id] || {}).impressions || 0))[0];
      picked = best ? best.id : "";
    }
    const shown = (o) => ((perf[o.id] || {}).impressions || 0) + ((perf[o.id] || {}).control_impressions || 0);
    const ordered = catalog.slice().sort((a, b) => shown(b) - shown(a) || String(a.title).localeCompare(String(b.title)));
    const busy = ordered.filter((o) => shown(o) > 0 || o.id === picked);
    const visible = allOffers ? ordered : busy;
    const rows = visible.map((o) => {
      const p = perf[o.id] || {};
      const trend = (hist.offers[o.id] || []).map((x) => x[1]);
      return h("tr", { class: o.id === picked ? "picked" : "", dataset: { offer: o.id },
        onclick: () => { picked = o.id; sessionStorage.setItem(PICKED, picked); renderOffers(); } },
      h("td", {}, h("div", { class: "strong" }, o.title || o.id), h("div", { class: "muted small" }, `${o.kind || "offer"} · ${o.id}`)),
      h("td", { class: "num impressions" }, num(p.impressions)),
      h("td", { class: "num accepted" }, num(p.accepted)),
      h("td", { class: "num rate" }, pct(p.acceptance_rate)),
      h("td", {}, sparkline(trend)),
      h("td", { class: "num control" }, num(p.control_impressions)),
      h("td", { class: `num uplift ${p.uplift > 0 ? "up" : p.uplift < 0 ? "down" : ""}` }, signedPct(p.uplift)),
      h("td", { class: "num revenue" }, num(p.revenue, 2)));
    });
    const pickedOffer = catalog.find((o) => o.id === picked);
    const series = hist.offers[picked] || [];
    clear(offersBox,
      h("div", { class: "card-head" }, h("h3", {}, "Offers"),
        h("span", { class: "muted small" }, "acceptance = accepted / shown; uplift against the held-out control group")),
      h("div", { class: "split" },
        h("div", { class: "table-wrap" },
          h("table", { class: "data", id: "offers-table" },
            h("thead", {}, h("tr", {}, ["Offer", "Shown", "Accepted", "Rate", "Trend", "Control", "Uplift", "Revenue"]
              .map((c, i) => h("th", { class: i && i !== 4 ? "num" : "" }, c)))),
            h("tbody", {}, rows)),
          idleToggle(ordered.length - busy.length, allOffers, "offers not shown yet",
            () => { allOffers = !allOffers; renderOffers(); })),
        lineChart([
          { name: "acceptance rate", points: series.map((p) => [p[0], p[1]]) },
          { name: "uplift vs control", points: series.map((p) => [p[0], p[2]]), color: PALETTE[3] }],
        { title: pickedOffer ? `${pickedOffer.title || picked} over time` : "Pick an offer",
          format: (v, d) => pct(v, Math.max(0, d - 2)), id: "offer-chart", legend: true, height: 260 })));
  }

  function renderModels() {
    if (last.errors.models && !last.models.length) {
      clear(modelsBox, h("h3", {}, "Models"), h("p", { class: "notice" }, problem(last.errors.models, "Models")));
      return;
    }
    const ordered = last.models.slice().sort((a, b) => (b.examples || 0) - (a.examples || 0));
    const busy = ordered.filter((m) => m.examples > 0);
    const models = allModels ? ordered : busy;
    const charted = (pickedModel ? models.filter((m) => m.name === pickedModel) : busy).slice(0, 6);
    const rows = models.map((m) => {
      const drift = m.drift || {};
      const trend = (hist.models[m.name] || []).map((x) => x[1]);
      return h("tr", { dataset: { model: m.name }, class: m.name === pickedModel ? "picked" : "",
        onclick: () => { pickedModel = pickedModel === m.name ? "" : m.name; renderModels(); } },
      h("td", {}, h("div", { class: "strong" }, m.target || m.name), h("div", { class: "muted small" }, m.kind)),
      h("td", { class: "num" }, num(m.version)),
      h("td", { class: "num examples" }, num(m.examples)),
      h("td", { class: "num" }, num(m.positives)),
      h("td", { class: "num auc" }, m.auc === null || m.auc === undefined ? dash : num(m.auc, 3)),
      h("td", {}, sparkline(trend, PALETTE[1])),
      h("td", { class: "num" }, m.logloss === null || m.logloss === undefined ? dash : num(m.logloss, 3)),
      h("td", { class: "drift" }, drift.detected
        ? h("span", { class: "badge warn" }, `drift ×${drift.count}${drift.last_at_example ? ` at #${num(drift.last_at_example)}` : ""}`)
        : h("span", { class: "badge ok" }, "stable")));
    });
    clear(modelsBox,
      h("div", { class: "card-head" }, h("h3", {}, "Models"),
        h("span", { class: "muted small" }, "progressive AUC: each example scored before it is learned")),
      h("div", { class: "split" },
        h("div", { class: "table-wrap" },
          models.length
            ? h("table", { class: "data", id: "models-table" },
              h("thead", {}, h("tr", {}, ["Model", "Version", "Examples", "Positives", "AUC", "Trend", "Log loss", "Drift"]
                .map((c, i) => h("th", { class: i && i !== 5 && i !== 7 ? "num" : "" }, c)))),
              h("tbody", {}, rows))
            : h("p", { class: "muted" }, "No model has learned anything yet."),
          idleToggle(ordered.length - busy.length, allModels, "models without examples",
            () => { allModels = !allModels; renderModels(); })),
        lineChart(charted.map((m, i) => ({ name: m.target || m.name, color: PALETTE[i % PALETTE.length],
          points: (hist.models[m.name] || []).map((p) => [p[0], p[1]]) })),
        { title: "Online quality (AUC)", format: (v, d) => num(v, d), id: "auc-chart", legend: true, height: 260 })));
  }

  render();
  tick();
  return { dispose() { stopped = true; clearTimeout(timer); } };
}

/** One offer after the other: each read refreshes the API's models, so don't pile them up. */
async function performances(catalog) {
  const out = [];
  for (const o of catalog) out.push(await api(`/v1/offers/${encodeURIComponent(o.id)}/performance`));
  return out;
}

function stat(label, value, id, cls, extra) {
  return h("div", { class: `tile ${cls || ""}`, id: `stat-${id}` },
    h("div", { class: "tile-label" }, label),
    h("div", { class: "tile-value" }, value),
    extra ? h("div", { class: "tile-extra" }, extra) : null);
}

/** Busy rows first; the idle ones behind a "show all" link so the table stays short. */
function idleToggle(idle, showing, what, flip) {
  if (!idle) return null;
  return h("button", { class: "btn ghost small show-all", type: "button", onclick: flip },
    showing ? `Hide ${idle} ${what}` : `Show ${idle} more ${what}`);
}
