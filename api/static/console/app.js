// The console shell: sign-in, the three views behind #/agent, #/sales and #/marketing.

import { api, session } from "./api.js";
import { clear, h } from "./dom.js";
import * as agent from "./agent.js";
import * as sales from "./sales.js";
import * as marketing from "./marketing.js";

const VIEWS = {
  agent: { module: agent, role: "agent", title: "Agent" },
  sales: { module: sales, role: "sales", title: "Sales" },
  marketing: { module: marketing, role: "agent", title: "Marketing & models" },
};

const $ = (id) => document.getElementById(id);
let me = null; // {key_id, roles}
let current = null; // {name, arg, dispose}

async function whoami() {
  return api("/console/whoami");
}

function showSignIn(message) {
  if (current) { current.dispose(); current = null; }
  clear($("view"));
  $("tabs").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  const err = $("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  session.set(key);
  $("signin-submit").disabled = true;
  try {
    me = await whoami();
    $("api-key").value = "";
    start();
  } catch (err) {
    session.clear();
    showSignIn(err.status === 401 ? "That API key is not known to this engine." : err.message);
  } finally {
    $("signin-submit").disabled = false;
  }
}

function signOut() {
  session.clear();
  me = null;
  location.hash = "";
  showSignIn();
}

function start() {
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("who").hidden = false;
  $("key-id").textContent = `key ${me.key_id.slice(0, 8)}… · ${me.roles.join(", ")}`;
  route();
}

/** "#/agent/c42" → {name: "agent", arg: "c42"} */
function parseHash() {
  const [, name, ...rest] = location.hash.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  return { name: VIEWS[name] ? name : "", arg };
}

export function navigate(name, arg) {
  location.hash = `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ""}`;
}

function route() {
  if (!me) return;
  let { name, arg } = parseHash();
  if (!name) {
    name = Object.keys(VIEWS).find((n) => me.roles.includes(VIEWS[n].role)) || "agent";
    history.replaceState(null, "", `#/${name}`);
  }
  if (current && current.name === name) {
    if (current.arg !== arg && current.update) { current.arg = arg; current.update(arg); }
    return;
  }
  if (current) current.dispose();
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.view === name);
    a.setAttribute("aria-current", a.dataset.view === name ? "page" : "false");
  }
  const view = VIEWS[name];
  document.title = `${view.title} · nextbest console`;
  const root = clear($("view"), h("section", { class: `view view-${name}`, id: `view-${name}` }));
  const el = root.firstChild;
  if (!me.roles.includes(view.role)) {
    el.append(h("div", { class: "card notice" },
      `This API key lacks the '${view.role}' role needed for the ${view.title} view.`));
    current = { name, arg, dispose() {} };
    return;
  }
  const mounted = view.module.mount(el, { arg, roles: me.roles, navigate });
  current = { name, arg, ...mounted };
}

async function boot() {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  if (!session.key) { showSignIn(); return; }
  try {
    me = await whoami();
    start();
  } catch (err) {
    session.clear();
    showSignIn(err.status === 401 ? "Your session's API key is no longer valid." : err.message);
  }
}

boot();
