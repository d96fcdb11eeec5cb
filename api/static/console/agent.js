// Agent view: find a customer, see who they are and what to offer, record their answer.

import { api } from "./api.js";
import { ago, clear, dash, h, num, pct, problem, titleCase, toast, when } from "./dom.js";

const CHANNELS = ["call_center", "web", "app", "store", "email", "sms", "sales"];
const PERF_EVERY_MS = 2000;

export function mount(el, { arg, navigate }) {
  const input = h("input", {
    id: "customer-id", type: "search", placeholder: "Customer id, e.g. c-1001",
    value: arg || "", spellcheck: "false", autocomplete: "off", "aria-label": "Customer id",
  });
  const channel = h("select", { id: "channel", "aria-label": "Channel" },
    CHANNELS.map((c) => h("option", { value: c }, titleCase(c))));
  const body = h("div", { class: "agent-body", id: "agent-body" }, empty());
  const form = h("form", { class: "toolbar card", id: "agent-search", onsubmit: find },
    h("div", { class: "field grow" }, h("label", { for: "customer-id" }, "Customer"), input),
    h("div", { class: "field" }, h("label", { for: "channel" }, "Channel"), channel),
    h("button", { class: "btn primary", type: "submit", id: "lookup" }, "Look up"));
  el.append(form, body);

  let timer = null;
  let token = 0;

  function find(event) {
    event.preventDefault();
    const id = input.value.trim();
    if (!id) return;
    if (id === arg) load(id);
    else navigate("agent", id);
  }

  async function load(id) {
    arg = id;
    input.value = id;
    const mine = ++token;
    clearInterval(timer);
    clear(body, h("div", { class: "card loading" }, `Loading ${id}…`));
    const nbaParams = { channel: channel.value, limit: 3 };
    const [profile, nba] = await Promise.allSettled([
      api(`/v1/customers/${encodeURIComponent(id)}`),
      api(`/v1/customers/${encodeURIComponent(id)}/next-best-action`, { params: nbaParams }),
    ]);
    if (mine !== token) return;
    if (profile.status === "rejected") {
      const err = profile.reason;
      clear(body, h("div", { class: "card notice", id: "agent-error" },
        err.status === 404 ? `No customer with id “${id}”.` : problem(err, "Customer")));
      return;
    }
    const cards = nba.status === "fulfilled" ? actionCards(nba.value) : null;
    clear(body,
      h("div", { class: "col" },
        summary(profile.value), alertsPanel(profile.value.alerts, navigate), timeline(profile.value)),
      h("div", { class: "col" }, actionsPanel(nba, cards, () => load(id))));
    if (cards) {
      const refresh = () => refreshCounts(cards);
      refresh();
      timer = setInterval(refresh, PERF_EVERY_MS);
    }
  }

  if (arg) load(arg);
  return {
    update(next) { if (next) load(next); else { arg = ""; input.value = ""; clear(body, empty()); } },
    dispose() { clearInterval(timer); token++; },
  };
}

function empty() {
  return h("div", { class: "card empty" },
    h("h2", {}, "Find a customer"),
    h("p", { class: "muted" },
      "Enter a customer id to see their value, risk, consent and recent activity, with the " +
      "next best actions to offer while they are on the line."));
}

function tile(label, value, extra, cls) {
  return h("div", { class: `tile ${cls || ""}` },
    h("div", { class: "tile-label" }, label),
    h("div", { class: "tile-value" }, value),
    extra ? h("div", { class: "tile-extra" }, extra) : null);
}

function riskClass(p) {
  if (p === null || p === undefined) return "";
  return p >= 0.6 ? "bad" : p >= 0.3 ? "warn" : "good";
}

function meter(p) {
  const bar = h("div", { class: "meter-fill" });
  bar.style.width = `${Math.round(Math.max(0, Math.min(1, p || 0)) * 100)}%`;
  return h("div", { class: `meter ${riskClass(p)}` }, bar);
}

function summary(c) {
  const sc = c.scores || {};
  const f = c.features || {};
  const consent = c.consent || {};
  const purposes = [...new Set(["marketing", "personalization", ...Object.keys(consent)])];
  return h("div", { class: "card", id: "customer-summary" },
    h("div", { class: "card-head" },
      h("div", {},
        h("h2", { class: "customer-name" }, c.customer_id),
        h("div", { class: "muted" },
          `Owner ${c.owner || dash} · segment ${sc.segment || dash} · updated ${when(c.updated_at)}`)),
      h("span", { class: `badge tier tier-${String(sc.tier || "none").toLowerCase()}`, id: "tier" },
        sc.tier ? `${titleCase(sc.tier)} tier` : "No tier yet")),
    h("div", { class: "tiles" },
      tile("Lifetime value", num(sc.clv, 2), "CLV, next 365 days", ""),
      tile("Churn risk", h("span", { id: "churn-risk" }, pct(sc.churn_risk, 0)),
        meter(sc.churn_risk), riskClass(sc.churn_risk)),
      tile("Still active", pct(sc.p_alive, 0), "probability alive", ""),
      tile("Total spend", num(f.total_spend, 2), `${num(f.purchases)} purchases`, "")),
    h("div", { class: "consent", id: "consent" },
      h("span", { class: "muted" }, "Consent"),
      purposes.map((p) => {
        const v = consent[p];
        const state = v && typeof v === "object" ? v.granted : v;
        const label = state === true ? "granted" : state === false ? "refused" : "unknown";
        const name = titleCase(p).replace("/", " on ");  // "marketing/email": one channel
        return h("span", { class: `chip consent-${label}` }, `${name}: ${label}`);
      })));
}

const ICON = { click: "◉", call: "☎", transaction: "¤" };

function describe(e) {
  if (e.type === "click") {
    const what = titleCase(e.action || "visit");
    return [what, e.product_id ? ` · ${e.product_id}` : "", e.category ? ` · ${e.category}` : ""].join("");
  }
  if (e.type === "call") {
    const parts = ["Call", e.reason && titleCase(e.reason), e.outcome];
    if (typeof e.sentiment === "number") parts.push(`sentiment ${e.sentiment.toFixed(2)}`);
    return parts.filter(Boolean).join(" · ");
  }
  if (e.type === "transaction") {
    const money = `${num(e.amount, 2)}${e.currency ? ` ${e.currency}` : ""}`;
    const sent = e.sent_currency ? ` (${num(e.sent_amount, 2)} ${e.sent_currency})` : "";
    return `${titleCase(e.kind || "purchase")} · ${money}${sent}${e.category ? ` · ${e.category}` : ""}`;
  }
  return titleCase(e.type);
}

function timeline(c) {
  const items = (c.recent || []).slice().sort((a, b) => b.ts - a.ts);
  return h("div", { class: "card", id: "timeline" },
    h("h3", {}, "Recent activity"),
    items.length
      ? h("ol", { class: "timeline" }, items.map((e) => h("li", { class: `tl tl-${e.type}` },
        h("span", { class: "tl-icon", "aria-hidden": "true" }, ICON[e.type] || "•"),
        h("div", { class: "tl-body" },
          h("div", { class: "tl-what" }, describe(e)),
          h("div", { class: "tl-when muted" },
            `${titleCase(e.channel || e.type)} · ${ago(e.ts, c.clock)} · ${when(e.ts)}`)))))
      : h("p", { class: "muted" }, "No clicks, calls or purchases recorded yet."));
}

function alertsPanel(alerts, navigate) {
  alerts = alerts || [];
  return h("div", { class: "card", id: "customer-alerts" },
    h("h3", {}, "Open alerts ", h("span", { class: "count" }, String(alerts.length))),
    alerts.length
      ? h("ul", { class: "mini-alerts" }, alerts.map((a) => h("li", {},
        h("span", { class: `sev sev-${a.severity}` }, a.severity),
        h("div", {}, h("div", {}, a.title),
          h("div", { class: "muted" }, (a.reasons || []).join(" · "))))))
      : h("p", { class: "muted" }, "None."),
    alerts.length && navigate
      ? h("button", { class: "btn ghost small", type: "button",
        onclick: () => navigate("sales", alerts[0].owner || "") }, "Open in the sales inbox")
      : null);
}

function actionCards(nba) {
  return (nba.actions || []).map((a) => ({ action: a, decisionId: nba.decision_id, el: null }));
}

function actionsPanel(nba, cards, reload) {
  const head = h("div", { class: "card-head" },
    h("h3", {}, "Next best actions"),
    h("button", { class: "btn ghost small", type: "button", id: "refresh-actions", onclick: reload },
      "Refresh"));
  if (nba.status === "rejected") {
    return h("div", { class: "card", id: "actions" }, head,
      h("p", { class: "notice" }, problem(nba.reason, "Next best actions")));
  }
  const list = h("ol", { class: "actions" }, cards.map(actionCard));
  const atRisk = (nba.value.summary || {}).at_risk;
  return h("div", { class: "card", id: "actions" }, head,
    atRisk ? h("p", { class: "notice", id: "at-risk" },
      "At risk of leaving (churn risk, or asked to cancel lately): retention actions first.") : null,
    nba.value.explored
      ? h("p", { class: "muted small" }, "This answer includes an exploratory choice.") : null,
    cards.length ? list : h("p", { class: "muted" }, "No eligible action for this customer now."),
    excludedNote(nba.value.excluded));
}

// why the other actions are not here: reason -> number of actions (the API's "excluded")
function excludedNote(excluded) {
  const parts = Object.entries(excluded || {}).sort((a, b) => b[1] - a[1]);
  if (!parts.length) return null;
  return h("p", { class: "muted small", id: "excluded" },
    "Not offered: " + parts.map(([why, n]) => `${why} (${n})`).join(", "));
}

function actionCard(card) {
  const a = card.action;
  const count = h("span", { class: "accepted-count" }, dash);
  const shown = h("span", { class: "shown-count" }, dash);
  const status = h("div", { class: "action-status", role: "status" });
  const accept = h("button", { class: "btn primary accept", type: "button" }, "Accept");
  const decline = h("button", { class: "btn decline", type: "button" }, "Decline");
  const buttons = h("div", { class: "action-buttons" }, accept, decline);

  async function answer(outcome) {
    accept.disabled = decline.disabled = true;
    try {
      await api(`/v1/decisions/${encodeURIComponent(card.decisionId)}/feedback`,
        // an acceptance is worth the catalog value of the offer (the revenue it books)
        { method: "POST", body: { offer_id: a.offer_id, outcome,
          value: outcome === "accepted" && typeof a.value === "number" ? a.value : undefined } });
      card.el.classList.add(outcome);
      status.textContent = outcome === "accepted" ? "Accepted · recorded" : "Declined · recorded";
      buttons.replaceWith(status);
      toast(`${a.title}: ${outcome === "accepted" ? "accepted" : "declined"}`, "ok");
    } catch (err) {
      accept.disabled = decline.disabled = false;
      toast(problem(err, "Feedback"), "error");
    }
  }
  accept.addEventListener("click", () => answer("accepted"));
  decline.addEventListener("click", () => answer("rejected"));

  card.count = count;
  card.shown = shown;
  card.el = h("li", { class: `action kind-${a.kind || "offer"}`, dataset: { offer: a.offer_id } },
    h("div", { class: "action-head" },
      h("span", { class: "rank" }, String(a.rank)),
      h("div", { class: "grow" },
        h("div", { class: "action-title" }, a.title || a.offer_id),
        h("div", { class: "muted small" },
          `${titleCase(a.kind || "offer")} · ${a.offer_id} · value ${num(a.value, 2)}`)),
      h("div", { class: "propensity", title: "The model's probability that this customer accepts" },
        h("strong", {}, pct(a.propensity, 0)), h("span", { class: "muted small" }, "likely"))),
    a.script ? h("blockquote", { class: "script" }, a.script) : null,
    a.reasons && a.reasons.length
      ? h("ul", { class: "reasons" }, a.reasons.map((r) => h("li", {}, r))) : null,
    h("div", { class: "action-foot" },
      h("div", { class: "muted small perf" }, "Accepted ", count, " of ", shown, " shown"),
      buttons));
  return card.el;
}

async function refreshCounts(cards) {
  await Promise.all(cards.map(async (card) => {
    try {
      const p = await api(`/v1/offers/${encodeURIComponent(card.action.offer_id)}/performance`);
      card.count.textContent = num(p.accepted);
      card.shown.textContent = num(p.impressions);
    } catch { /* the counts are a hint; the action stays usable */ }
  }));
}
