// Talking to the nextbest API. The key lives in this tab's sessionStorage and is sent only as
// an Authorization header: never in a URL, so never in an access log or the browser history.

const KEY = "nextbest.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

function authHeaders(extra) {
  return { Authorization: `Bearer ${session.key}`, ...extra };
}

async function failure(res) {
  let err = {};
  try { err = (await res.json()).error || {}; } catch { /* not JSON */ }
  return new ApiError(res.status, err.code || "http_error", err.message || res.statusText);
}

/** JSON request with the session's key; throws ApiError with the API's message. */
export async function api(path, { method = "GET", params, body, signal } = {}) {
  const headers = authHeaders({ Accept: "application/json" });
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url(path, params), {
    method, headers, signal, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

/** Plain text without the key (for /metrics, which needs none). */
export async function text(path, { signal } = {}) {
  const res = await fetch(url(path), { signal, cache: "no-store" });
  if (!res.ok) throw await failure(res);
  return res.text();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parse one server-sent event block ("id: …\nevent: …\ndata: …"); null for comments. */
export function parseEvent(block) {
  const ev = { id: null, event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "id") ev.id = value;
    else if (field === "event") ev.event = value;
    else if (field === "data") ev.data.push(value);
  }
  if (!ev.data.length) return null;
  return { ...ev, data: ev.data.join("\n") };
}

/**
 * Server-sent events read with fetch(), so the key goes in a header (EventSource cannot send
 * one). Reconnects with Last-Event-ID and backoff; a silent link (no keep-alive) is dropped.
 * onState gets "connecting", "live", "reconnecting" or "denied". Returns {close()}.
 */
export function stream(path, params, { onEvent, onState }) {
  let stopped = false;
  let ctrl = null;
  let lastId = null;
  let delay = 1000;

  async function once() {
    ctrl = new AbortController();
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (lastId) headers["Last-Event-ID"] = lastId;
    const res = await fetch(url(path, params), { headers, signal: ctrl.signal, cache: "no-store" });
    if (!res.ok) throw await failure(res);
    onState("live", { resumed: Boolean(lastId) });
    delay = 1000;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let watchdog = setTimeout(() => ctrl.abort(), 30000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctrl.abort(), 30000);
        buf += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const ev = parseEvent(buf.slice(0, end));
          buf = buf.slice(end + 2);
          if (!ev) continue;
          if (ev.id) lastId = ev.id;
          onEvent(ev);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  (async () => {
    onState("connecting");
    while (!stopped) {
      try {
        await once();
      } catch (err) {
        if (stopped) return;
        if (err.status === 401 || err.status === 403) { onState("denied", err); return; }
      }
      if (stopped) return;
      onState("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  })();

  return {
    close() {
      stopped = true;
      if (ctrl) ctrl.abort();
    },
  };
}
