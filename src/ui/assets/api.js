// Talking to the service: every request goes through `send`, which adds the API key (kept in
// sessionStorage) as `Authorization: Bearer <key>` and turns problem documents into errors.

const KEY = "longrun.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

let answered = () => {};

/** Call `fn(key)` after every 2xx answer, with the key its request carried ("" for none). */
export function onAnswered(fn) {
  answered = fn;
}

/** Request headers with the API key, when one is set. */
export function authHeaders(extra = {}) {
  const h = new Headers(extra);
  const key = apiKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  return h;
}

/** A problem document (RFC 9457) or a failure to reach the service. */
export class Problem extends Error {
  constructor({ status = 0, title = "Error", detail = "", type = "", instance = "" }) {
    super(detail ? `${title}: ${detail}` : title);
    Object.assign(this, { status, title, detail, type, instance });
  }
}

/** The problem an answer that is not 2xx carries (JSON or XML), or one made from its status. */
export async function problemOf(response) {
  const ct = response.headers.get("content-type") || "";
  const text = await response.text().catch(() => "");
  const status = response.status;
  if (ct.includes("json")) {
    try {
      const p = JSON.parse(text);
      return new Problem({ status, title: p.title || `HTTP ${status}`, detail: p.detail || "", type: p.type || "", instance: p.instance || "" });
    } catch {
      // fall through to the plain form
    }
  }
  if (ct.includes("xml")) {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const field = (n) => doc.getElementsByTagName(n)[0]?.textContent || "";
    if (field("title") || field("detail")) {
      return new Problem({ status, title: field("title") || `HTTP ${status}`, detail: field("detail"), type: field("type"), instance: field("instance") });
    }
  }
  return new Problem({ status, title: `HTTP ${status} ${response.statusText || ""}`.trim(), detail: text.slice(0, 300) });
}

/** fetch with the key; rejects with a Problem unless the answer is 2xx. */
export async function send(url, { method = "GET", body, headers = {}, accept = "application/json", signal } = {}) {
  const key = apiKey();
  const h = authHeaders(headers);
  if (accept) h.set("Accept", accept);
  let response;
  try {
    response = await fetch(url, { method, body, headers: h, signal, cache: "no-cache" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new Problem({ title: "The service cannot be reached", detail: e.message });
  }
  if (!response.ok) throw await problemOf(response);
  answered(key);
  return response;
}

/** GET (or another method) answered with JSON. */
export async function getJson(url, options) {
  const response = await send(url, options);
  return { response, body: await response.json() };
}

/** The first link of `doc` with relation `rel`. */
export function link(doc, rel) {
  return (doc?.links || []).find((l) => l.rel === rel);
}

/** Every link of `doc` with relation `rel`. */
export function links(doc, rel) {
  return (doc?.links || []).filter((l) => l.rel === rel);
}
