// The console's shell: sign-in, the header (views allowed for the role, live status,
// language), the live-connection banner, and hash routing between the three views.
// A wall display may load the page while the service is down or restarting: the stored
// token is kept and checked again with backoff; only a 401 asks for signing in again.

import { can, onSignedOut, session, signIn, signOut } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { LANGUAGES, getLang, label, onLangChange, setLang, t, time } from "./i18n.js";
import { Live } from "./live.js";

const VIEWS = {
  dispatch: { module: "./dispatch.js", allowed: () => can("PUT", "/api/incidents/{incident_id}/area") },
  board: { module: "./board.js", allowed: () => can("GET", "/api/incidents/{incident_id}/playbook") },
  review: { module: "./review.js", allowed: () => can("GET", "/api/incidents/{incident_id}/timeline") },
};
const DEFAULT_VIEW = { dispatcher: "dispatch", command: "board", reviewer: "review", admin: "dispatch" };

const root = document.getElementById("app");
let live = null;
let current = null; // {name, view, arg}
let liveStatus = { state: "connecting" };
let bannerTimer = null;
let showSeq = 0; // bumped on every route change: a view still loading for an older one is not mounted
let boot = null; // while the service is unreachable: {attempt, retryAt, message, busy, timer, ticker, status}
let bootSeq = 0; // bumped when the retrying stops: a check still in flight is then ignored
const BOOT_MAX_DELAY = 30_000;

document.documentElement.lang = getLang();

function route() {
  const [, name = "", ...rest] = location.hash.replace(/^#/, "").split("/");
  return { name, arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}

function navigate(name, arg = null, { replaceState = false } = {}) {
  const hash = `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ""}`;
  if (location.hash === hash) return;
  if (replaceState) history.replaceState(null, "", hash);
  else location.hash = hash;
  if (replaceState) show();
}

function languageSwitch() {
  const select = h("select", { id: "lang", "aria-label": t("lang.label"), onchange: () => setLang(select.value) },
    LANGUAGES.map(([code, name]) => h("option", { value: code, selected: code === getLang() }, name)));
  return h("label", { class: "lang" }, h("span", { class: "sr-only" }, t("lang.label")), select);
}

function unmountView() {
  showSeq += 1;
  if (current) current.view.unmount();
  current = null;
}

function renderLogin(message = "") {
  stopBoot();
  unmountView();
  stopLive();
  document.title = t("app.name");
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true, spellcheck: "false", "aria-describedby": "token-help" });
  const error = h("p", { class: "error", role: "alert" }, message);
  const form = h("form", { class: "login card", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await signIn(input.value.trim());
      start();
    } catch (err) {
      session.me = null;
      error.textContent = err.status === 401 ? t("login.bad", { message: err.message }) : t("common.error", { message: err.message });
      input.select();
    }
  } },
  h("h1", {}, t("app.name")),
  h("label", { for: "token" }, t("login.token")),
  input,
  h("p", { id: "token-help", class: "muted" }, t("login.help")),
  error,
  h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("login.submit")), languageSwitch()));
  replace(root, h("main", { id: "main", class: "login-wrap" }, form));
  input.focus();
}

function renderShell() {
  const me = session.me;
  const nav = h("nav", { "aria-label": t("nav.main") },
    Object.keys(VIEWS).filter((name) => VIEWS[name].allowed()).map((name) =>
      h("a", { href: `#/${name}`, dataset: { view: name }, "aria-current": current && current.name === name ? "page" : false }, t(`nav.${name}`))));
  const pill = h("span", { id: "live-pill", class: `pill live-${liveStatus.state}`, role: "status" }, t(`live.${liveStatus.state}`));
  const header = h("header", { class: "top" },
    h("span", { class: "brand" }, h("img", { src: "/console/icon.svg", alt: "", width: 22, height: 22 }), t("app.name")),
    nav,
    h("span", { class: "spacer" }),
    pill,
    languageSwitch(),
    h("span", { class: "who" }, t("user.as", { name: me.name, role: label("role", me.role) })),
    h("button", { type: "button", class: "small", onclick: () => {
      signOut();
      location.hash = "";
      renderLogin();
    } }, t("user.signout")));
  const banner = h("div", { id: "live-banner", class: "banner", role: "alert", hidden: true });
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, header, banner, main);
  updateLive(liveStatus);
  return main;
}

function updateNav() {
  for (const a of root.querySelectorAll("header nav a")) {
    if (current && a.dataset.view === current.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function updateLive(status) {
  liveStatus = status;
  const pill = document.getElementById("live-pill");
  const banner = document.getElementById("live-banner");
  if (!pill || !banner) return;
  const shown = status.state === "connecting" && !status.since ? "connecting" : status.state === "live" ? "live" : "down";
  pill.className = `pill live-${shown}`;
  pill.textContent = t(`live.${shown}`);
  clearBannerTimer();
  if (status.state === "live") {
    if (status.restored) {
      banner.hidden = false;
      banner.className = "banner ok";
      banner.textContent = t("live.back", { time: time(new Date(), true) });
      bannerTimer = setTimeout(() => (banner.hidden = true), 6000);
    } else banner.hidden = true;
    return;
  }
  if (!status.since) return;
  banner.hidden = false;
  banner.className = "banner down";
  const tick = () => {
    const seconds = status.retryAt ? Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000)) : 0;
    banner.textContent = status.state === "down" && seconds > 0
      ? t("live.lost", { time: time(status.since, true), seconds, attempt: status.attempt })
      : t("live.reconnecting", { time: time(status.since, true) });
  };
  tick();
  bannerTimer = setInterval(tick, 1000);
}

function startLive() {
  stopLive();
  live = new Live(session.token);
  live.addEventListener("status", (ev) => updateLive(ev.detail));
  live.addEventListener("autherror", (ev) => renderLogin(t("login.bad", { message: ev.detail.message })));
  live.start();
}

function clearBannerTimer() {
  clearTimeout(bannerTimer);
  clearInterval(bannerTimer);
  bannerTimer = null;
}

function stopLive() {
  if (live) live.stop();
  live = null;
  clearBannerTimer();
  liveStatus = { state: "connecting" };
}

async function show() {
  const { name, arg } = route();
  const me = session.me;
  if (!me) return;
  const wanted = VIEWS[name] && VIEWS[name].allowed() ? name : null;
  if (!wanted) {
    const fallback = [DEFAULT_VIEW[me.role], ...Object.keys(VIEWS)].find((n) => n && VIEWS[n].allowed());
    if (fallback) navigate(fallback, null, { replaceState: true });
    return;
  }
  if (current && current.name === wanted && current.view.setArg) {
    current.arg = arg;
    current.view.setArg(arg);
    return;
  }
  // The old view stops its timers, live listeners and map before the next one loads.
  unmountView();
  const seq = showSeq;
  replace(document.getElementById("main"), h("p", { class: "boot" }, t("common.loading")));
  const mod = await import(VIEWS[wanted].module);
  if (seq !== showSeq || !session.me || !live) return; // routed elsewhere (or signed out) meanwhile
  const main = document.getElementById("main");
  if (!main) return;
  replace(main);
  const ctx = { live, navigate, can };
  const view = mod.mount(main, ctx, arg);
  current = { name: wanted, view, arg };
  document.title = `${t(`nav.${wanted}`)} · ${t("app.name")}`;
  updateNav();
}

function start() {
  stopBoot();
  unmountView();
  startLive();
  renderShell();
  show();
}

// --- the service unreachable at start: keep the token, retry with backoff ----------------

function stopBoot() {
  bootSeq += 1;
  if (!boot) return;
  clearTimeout(boot.timer);
  clearInterval(boot.ticker);
  boot = null;
}

function bootText() {
  if (boot.busy) return t("boot.now", { attempt: boot.attempt });
  const seconds = Math.max(0, Math.ceil((boot.retryAt - Date.now()) / 1000));
  return t("boot.wait", { seconds, attempt: boot.attempt, message: boot.message });
}

function renderUnreachable() {
  document.title = `${t("boot.title")} · ${t("app.name")}`;
  boot.status = h("p", { id: "boot-status", class: "error", "aria-live": "off" }, bootText());
  replace(root, h("main", { id: "main", class: "login-wrap" },
    h("section", { class: "login card", id: "unreachable", role: "alert", "aria-labelledby": "boot-title" },
      h("h1", { id: "boot-title" }, t("boot.title")),
      boot.status,
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", id: "boot-retry", onclick: () => retryNow() }, t("boot.retry")),
        languageSwitch()),
      h("p", {}, h("button", { type: "button", class: "small", id: "boot-other", onclick: () => {
        signOut();
        renderLogin();
      } }, t("boot.other"))))));
}

function updateBoot() {
  if (!boot || !boot.status) return;
  const text = bootText();
  if (boot.status.textContent !== text) boot.status.textContent = text;
}

function scheduleRetry(err) {
  const attempt = boot ? boot.attempt + 1 : 1;
  const first = !boot;
  if (boot) {
    clearTimeout(boot.timer);
    clearInterval(boot.ticker);
  }
  // 1 s, 2 s, 4 s ... up to 30 s, with jitter: a room of wall displays does not retry in step.
  const base = Math.min(BOOT_MAX_DELAY, 1000 * 2 ** (attempt - 1));
  const delay = base / 2 + Math.random() * (base / 2);
  boot = {
    ...(boot || {}),
    attempt,
    busy: false,
    retryAt: Date.now() + delay,
    message: err.message || String(err),
    timer: setTimeout(() => retryNow(), delay),
    ticker: setInterval(updateBoot, 1000),
  };
  if (first || !boot.status || !boot.status.isConnected) renderUnreachable();
  else updateBoot();
}

function retryNow() {
  if (!boot || boot.busy) return;
  clearTimeout(boot.timer);
  boot.busy = true;
  updateBoot();
  connect();
}

/** Check the stored token. A 401 means signing in again; anything else (no answer, a proxy's
 * 502 while the service restarts) is retried, the token kept. */
async function connect() {
  const seq = bootSeq;
  try {
    await signIn(session.token);
  } catch (err) {
    if (seq !== bootSeq) return; // "another token" was chosen meanwhile
    session.me = null;
    if (err.status === 401) {
      renderLogin();
      return;
    }
    scheduleRetry(err);
    return;
  }
  if (seq !== bootSeq) {
    if (!live) signOut(); // the login form is up: the old token stays forgotten
    return;
  }
  start();
}

window.addEventListener("hashchange", () => show());
onSignedOut(() => {
  if (session.me) {
    signOut();
    renderLogin(t("login.bad", { message: "401" }));
  }
});
onLangChange(() => {
  if (boot) {
    renderUnreachable();
    return;
  }
  if (!session.me) {
    renderLogin();
    return;
  }
  // Everything is drawn again in the new language; the view keeps its route.
  unmountView();
  renderShell();
  show();
});
window.addEventListener("error", (ev) => toast(t("common.error", { message: ev.message }), "error"));
window.addEventListener("unhandledrejection", (ev) => {
  const err = ev.reason || {};
  if (err.status === 401) return;
  toast(t("common.error", { message: err.message || String(err) }), "error");
});

if (session.token) connect();
else renderLogin();
