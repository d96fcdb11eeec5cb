// Reading the engine's own Prometheus metrics: rates and latency quantiles between two samples.

const DECISION_ROUTES = new Set(["/v1/decisions", "/v1/customers/{customer_id}/next-best-action"]);

/** Prometheus text format → [{name, labels, value}] (comments and HELP/TYPE lines skipped). */
export function parseMetrics(body) {
  const out = [];
  const line = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of body.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(label)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]), at: Date.now() });
  }
  out.at = Date.now();
  return out;
}

function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((n, s) => n + s.value, 0);
}

/** Cumulative bucket counts by upper bound, over the decision routes. */
function buckets(samples) {
  const by = new Map();
  for (const s of samples) {
    if (s.name !== "nextbest_request_seconds_bucket" || !DECISION_ROUTES.has(s.labels.route)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    by.set(le, (by.get(le) || 0) + s.value);
  }
  return by;
}

/** Like Prometheus's histogram_quantile: linear within the bucket that holds the rank. */
export function quantile(q, counts) {
  const les = [...counts.keys()].sort((a, b) => a - b);
  const total = counts.get(Infinity) || 0;
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const c = counts.get(le);
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1e-12, c - prevCount);
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

/** Events/s, decisions/s and decision latency p50/p99 between two parsed samples. */
export function engineFigures(before, after) {
  const dt = Math.max(0.001, (after.at - before.at) / 1000);
  const rate = (name, keep) => Math.max(0, sum(after, name, keep) - sum(before, name, keep)) / dt;
  const b0 = buckets(before);
  const b1 = buckets(after);
  const delta = new Map([...b1].map(([le, c]) => [le, Math.max(0, c - (b0.get(le) || 0))]));
  return {
    eventsPerS: rate("nextbest_events_total", (l) => l.result === "accepted"),
    decisionsPerS: rate("nextbest_decisions_total"),
    p50: quantile(0.5, delta),
    p99: quantile(0.99, delta),
  };
}
