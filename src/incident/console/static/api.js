// The HTTP API with the signed-in token; what the role may do, read from the OpenAPI document
// (its x-roles are the same table the server enforces, so the console cannot drift from it).

const TOKEN_KEY = "incident.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  /** "METHOD /path/{param}" -> roles allowed */
  ops: new Map(),
  /** server time minus browser time, in ms (SLA countdowns use the server's clock) */
  skew: 0,
};

const signedOut = new EventTarget();
export function onSignedOut(fn) {
  signedOut.addEventListener("signedout", fn);
}

export function setToken(token) {
  session.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function now() {
  return Date.now() + session.skew;
}

async function send(method, path, body, token = session.token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const started = Date.now();
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", `the service did not answer (${err.message})`);
  }
  const date = resp.headers.get("Date");
  if (date) {
    const skew = new Date(date).getTime() - (started + Date.now()) / 2;
    // The Date header has whole seconds: only a real difference is worth correcting.
    session.skew = Math.abs(skew) > 1500 ? skew : 0;
  }
  return resp;
}

async function failure(resp) {
  let code = "http_error";
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  const err = new ApiError(resp.status, code, message);
  if (resp.status === 401) signedOut.dispatchEvent(new CustomEvent("signedout", { detail: err }));
  return err;
}

/** JSON in, JSON out; a 4xx/5xx throws ApiError with the service's code and message. */
export async function api(method, path, body) {
  const resp = await send(method, path, body);
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path) => api("GET", path);

/** A paged list whole: follows `next_cursor` and joins the pages' `key` rows (the answer is
 *  the last page's, with every row). */
export async function getAll(path, key) {
  const sep = path.includes("?") ? "&" : "?";
  let page = await get(path);
  const rows = [...page[key]];
  for (let n = 0; page.next_cursor && n < 1000; n++) {
    page = await get(`${path}${sep}cursor=${encodeURIComponent(page.next_cursor)}`);
    rows.push(...page[key]);
  }
  return { ...page, [key]: rows };
}
export const post = (path, body = {}) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);

/** Sign in: the token is good when /api/me answers; the allowed operations come with it. */
export async function signIn(token) {
  const resp = await send("GET", "/api/me", undefined, token);
  if (!resp.ok) {
    const err = await failure(resp);
    throw err;
  }
  session.me = await resp.json();
  setToken(token);
  const doc = await (await send("GET", "/api/openapi.json", undefined, null)).json();
  session.ops = new Map();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      session.ops.set(`${method.toUpperCase()} ${path}`, op["x-roles"] || null);
    }
  }
  return session.me;
}

export function signOut() {
  setToken(null);
  session.me = null;
}

/** May the signed-in role call this operation? `path` as in the API table, e.g. "/api/incidents/{incident_id}/stage". */
export function can(method, path) {
  if (!session.me) return false;
  const roles = session.ops.get(`${method} ${path}`);
  if (roles === undefined) return false; // not served by this version of the service
  return roles === null || roles.includes(session.me.role);
}

/** Fetch with the token and save the answer as a file (a Blob URL: the token never goes in a link). */
export async function download(path, fallbackName) {
  const resp = await send("GET", path, undefined);
  if (!resp.ok) throw await failure(resp);
  const blob = await resp.blob();
  const disposition = resp.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  return saveBlob(blob, match ? match[1] : fallbackName);
}

/** Save JSON the console already holds as a file (e.g. a timeline read page by page). */
export function saveJson(value, name) {
  return saveBlob(new Blob([JSON.stringify(value, null, 2)], { type: "application/json" }), name);
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

export const enc = encodeURIComponent;
