// Sales view: an owner's alert inbox, live over the alert stream, acknowledged from the list.

import { api, stream } from "./api.js";
import { clear, h, num, problem, titleCase, toast, when } from "./dom.js";

const RANK = { critical: 4, high: 3, medium: 2, low: 1 };
const OWNER = "nextbest.owner";
const RESYNC_MS = 30000;

export function mount(el, { arg, navigate }) {
  let owner = arg || sessionStorage.getItem(OWNER) || "";
  const alerts = new Map(); // alert_id → alert
  const fresh = new Set();
  let live = null;
  let token = 0;

  const ownerInput = h("input", {
    id: "owner", type: "search", value: owner, placeholder: "all owners",
    spellcheck: "false", autocomplete: "off",
  });
  const openOnly = h("input", { id: "open-only", type: "checkbox", checked: true });
  const order = h("select", { id: "order", "aria-label": "Order" },
    h("option", { value: "severity" }, "Most severe first"),
    h("option", { value: "newest" }, "Newest first"));
  const state = h("span", { class: "live-state connecting", id: "live-state" }, "Connecting…");
  const counts = h("div", { class: "sev-counts", id: "sev-counts" });
  const list = h("ol", { class: "inbox", id: "inbox" });
  const note = h("div", { class: "inbox-note" });

  el.append(
    h("form", { class: "toolbar card", id: "sales-filter", onsubmit: (e) => {
      e.preventDefault();
      const next = ownerInput.value.trim();
      if (next === owner) connect();
      else navigate("sales", next);
    } },
    h("div", { class: "field grow" }, h("label", { for: "owner" }, "Account owner"), ownerInput),
    h("div", { class: "field" }, h("label", { for: "order" }, "Order"), order),
    h("label", { class: "check" }, openOnly, " Open only"),
    h("button", { class: "btn primary", type: "submit" }, "Show"),
    state),
    h("div", { class: "card" },
      h("div", { class: "card-head" }, h("h2", { id: "inbox-title" }), counts),
      note, list));

  openOnly.addEventListener("change", render);
  order.addEventListener("change", render);

  function setState(s, info) {
    const text = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
      denied: "Not allowed" }[s];
    state.className = `live-state ${s}`;
    state.textContent = text;
    if (s === "denied") note.textContent = problem(info, "Live alerts");
    if (s === "live" && !(info && info.resumed)) loadList(); // after connecting: nothing missed
  }

  async function loadList() {
    const mine = token;
    try {
      const res = await api("/v1/alerts", { params: { owner, limit: 200 } });
      if (mine !== token) return;
      // statuses change elsewhere too (another rep acknowledges): take the list's word for them
      for (const a of res.alerts) alerts.set(a.alert_id, { ...alerts.get(a.alert_id), ...a });
      note.textContent = "";
    } catch (err) {
      note.textContent = problem(err, "Alerts");
    }
    render();
  }

  function onEvent(ev) {
    if (ev.event !== "alert") return;
    const a = JSON.parse(ev.data);
    const known = alerts.has(a.alert_id);
    alerts.set(a.alert_id, { ...alerts.get(a.alert_id), ...a });
    if (!known) {
      fresh.add(a.alert_id);
      toast(`New ${a.severity} alert: ${a.title}`, a.severity === "critical" ? "error" : "info");
    }
    render();
  }

  function sorted() {
    const rows = [...alerts.values()].filter((a) => !openOnly.checked || a.status === "open");
    const byTime = (a, b) => (b.ts - a.ts) || String(b.stream_id).localeCompare(String(a.stream_id));
    if (order.value === "newest") return rows.sort(byTime);
    return rows.sort((a, b) => ((RANK[b.severity] || 0) - (RANK[a.severity] || 0)) || byTime(a, b));
  }

  function render() {
    const rows = sorted();
    document.getElementById("inbox-title").textContent =
      `${owner ? `Alerts for ${owner}` : "All alerts"} · ${rows.length}`;
    const open = [...alerts.values()].filter((a) => a.status === "open");
    clear(counts, ["critical", "high", "medium", "low"].map((s) => {
      const n = open.filter((a) => a.severity === s).length;
      return h("span", { class: `sev sev-${s} ${n ? "" : "zero"}`, dataset: { count: n } }, `${num(n)} ${s}`);
    }));
    clear(list, rows.length ? rows.map(row) : h("li", { class: "empty muted" },
      openOnly.checked ? "No open alerts. New ones appear here as they are raised." : "No alerts."));
  }

  function row(a) {
    const ack = h("button", { class: "btn small ack", type: "button", disabled: a.status !== "open" },
      a.status === "open" ? "Acknowledge" : "Acknowledged");
    ack.addEventListener("click", async () => {
      ack.disabled = true;
      try {
        await api(`/v1/alerts/${encodeURIComponent(a.alert_id)}/ack`, { method: "POST" });
        a.status = "acked";
        fresh.delete(a.alert_id);
        toast(`Acknowledged: ${a.title}`, "ok");
        render();
      } catch (err) {
        ack.disabled = false;
        toast(problem(err, "Acknowledge"), "error");
      }
    });
    const isNew = fresh.has(a.alert_id);
    const customer = a.customer_id
      ? h("a", { href: `#/agent/${encodeURIComponent(a.customer_id)}`, class: "customer-link" },
        a.customer_id)
      : "—";
    return h("li", {
      class: `alert sev-row-${a.severity} ${a.status !== "open" ? "acked" : ""} ${isNew ? "new" : ""}`,
      dataset: { alertId: a.alert_id, severity: a.severity, status: a.status },
    },
    h("span", { class: `sev sev-${a.severity}` }, a.severity),
    h("div", { class: "alert-main" },
      h("div", { class: "alert-title" }, a.title, isNew ? h("span", { class: "new-badge" }, "new") : null),
      h("div", { class: "alert-meta muted" },
        h("span", { class: "chip" }, titleCase(a.type)), " customer ", customer,
        ` · ${when(a.ts)} · score ${num(a.score, 2)}${a.owner && !owner ? ` · owner ${a.owner}` : ""}`),
      a.reasons && a.reasons.length
        ? h("ul", { class: "reasons" }, a.reasons.map((r) => h("li", {}, r))) : null),
    ack);
  }

  function connect() {
    token++;
    alerts.clear();
    fresh.clear();
    if (live) live.close();
    sessionStorage.setItem(OWNER, owner);
    ownerInput.value = owner;
    render();
    live = stream("/v1/alerts/stream", { owner }, { onEvent, onState: setState });
  }

  const resync = setInterval(loadList, RESYNC_MS);

  connect();
  return {
    update(next) { owner = next || ""; connect(); },
    dispose() { token++; clearInterval(resync); if (live) live.close(); },
  };
}
