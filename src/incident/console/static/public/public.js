// The residents' page: open public incidents, "is my address affected?", sign-up link.
// Everything comes from /public/api (no token); nothing is stored but the language choice.

import { LANGUAGES, dateTime, language, number, pickLanguage, setLanguage, t } from "./i18n.js";
import { AreaMap } from "./map.js";

const REFRESH_MS = 60_000;
const $ = (id) => document.getElementById(id);

const state = { data: null, point: null, check: null, selected: null };
let map;

function stored() {
  try {
    return localStorage.getItem("public.lang");
  } catch {
    return null;
  }
}

function remember(lang) {
  try {
    localStorage.setItem("public.lang", lang);
  } catch {
    // private browsing: the choice lasts this page only
  }
}

function translatePage() {
  document.documentElement.lang = language();
  document.title = t("page.title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").value = language();
}

function what(incident) {
  const parts = [t(`kind.${incident.kind}`)];
  if (incident.area_description) parts.push(incident.area_description);
  return parts.join(" \u2013 ");
}

function item(dl, term, value) {
  if (value == null || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.append(dt, dd);
}

function renderIncident(incident) {
  const li = document.createElement("li");
  li.className = "incident";
  li.dataset.id = incident.id;
  const h = document.createElement("h3");
  h.textContent = `${t(`kind.${incident.kind}`)} (${t(`utility.${incident.utility}`)})`;
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = t(`status.${incident.status}`);
  const dl = document.createElement("dl");
  item(dl, t("field.where"), incident.area_description);
  item(dl, t("field.etr"), incident.etr ? dateTime(incident.etr) : t("etr.unknown"));
  if (incident.start || incident.end) {
    item(dl, t("field.window"), `${dateTime(incident.start)} \u2013 ${dateTime(incident.end)}`);
  }
  if (incident.households != null) item(dl, t("field.households"), number(incident.households));
  item(dl, t("field.updated"), dateTime(incident.updated_at));
  li.append(h, status, dl);
  if (incident.advice) {
    const head = document.createElement("h4");
    head.textContent = t("field.advice");
    const advice = document.createElement("p");
    advice.className = "advice";
    advice.lang = incident.advice.language;
    advice.textContent = incident.advice.text;
    li.append(head, advice);
  }
  if (incident.area) {
    const show = document.createElement("button");
    show.type = "button";
    show.className = "secondary";
    show.textContent = t("show");
    show.addEventListener("click", () => {
      state.selected = incident.id;
      map.select(incident.id);
      $("map").scrollIntoView({ behavior: "smooth", block: "center" });
    });
    li.append(show);
  }
  return li;
}

function renderList() {
  const list = $("incidents");
  const note = $("list-state");
  list.replaceChildren();
  if (!state.data) return;
  const incidents = state.data.incidents;
  note.textContent = incidents.length === 0 ? t("list.none")
    : incidents.length === 1 ? t("list.count.one") : t("list.count", { count: number(incidents.length) });
  for (const incident of incidents) list.append(renderIncident(incident));
  map.draw(state.data.bounds, incidents, (i) => t("map.area", { what: what(i) }));
  if (state.selected) map.select(state.selected);
  if (state.point) map.setPoint(state.point[0], state.point[1]);
}

function renderAnswer() {
  const box = $("answer");
  box.replaceChildren();
  box.className = "answer";
  const result = state.check;
  if (!result) return;
  box.classList.add(result.answer);
  const verdict = document.createElement("p");
  verdict.className = "verdict";
  verdict.dataset.answer = result.answer;
  verdict.textContent = t(`answer.${result.answer}`, { distance: number(result.near_m) });
  const at = document.createElement("p");
  at.textContent = t("answer.at", { lat: result.lat.toFixed(5), lon: result.lon.toFixed(5) });
  box.append(verdict, at);
  for (const r of result.results.filter((x) => x.answer !== "not_affected")) {
    const p = document.createElement("p");
    const key = r.answer === "affected" ? "answer.incident.affected" : "answer.incident.near";
    p.textContent = t(key, { what: what(r), distance: number(Math.round(r.distance_m ?? 0)) });
    box.append(p);
    if (r.advice) {
      const advice = document.createElement("p");
      advice.className = "advice";
      advice.lang = r.advice.language;
      advice.textContent = r.advice.text;
      box.append(advice);
    }
  }
}

async function getJson(url) {
  // Revalidated each time (a 304 on its ETag when nothing changed): a page left open
  // shows a lifted advisory at its next look, not when some cache lets go of it.
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-cache" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

async function loadIncidents() {
  try {
    state.data = await getJson(`/public/api/incidents?lang=${encodeURIComponent(language())}`);
    renderList();
  } catch {
    $("list-state").textContent = t("list.failed");
  }
}

async function check(lon, lat) {
  state.point = [lon, lat];
  map.setPoint(lon, lat);
  $("lat").value = lat.toFixed(6);
  $("lon").value = lon.toFixed(6);
  $("form-error").textContent = "";
  $("answer").textContent = t("check.checking");
  try {
    const params = new URLSearchParams({ lon: lon.toFixed(6), lat: lat.toFixed(6), lang: language() });
    state.check = await getJson(`/public/api/check?${params}`);
    renderAnswer();
  } catch (err) {
    state.check = null;
    $("answer").textContent = "";
    $("form-error").textContent = t("check.failed", { message: err.message });
  }
}

function typed(id, lo, hi) {
  const raw = $(id).value.trim().replace(",", ".");
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(raw)) return null;
  const value = Number(raw);
  return value >= lo && value <= hi ? value : null;
}

function switchLanguage(lang) {
  setLanguage(lang);
  remember(lang);
  translatePage();
  renderList();
  renderAnswer();
  loadIncidents();
  if (state.point) check(state.point[0], state.point[1]);
}

function start() {
  setLanguage(pickLanguage(stored(), navigator.languages || [navigator.language]));
  translatePage();
  map = new AreaMap($("map"), (lon, lat) => check(lon, lat));
  window.publicMap = map;
  $("lang").addEventListener("change", (event) => switchLanguage(event.target.value));
  $("check-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const lat = typed("lat", -90, 90);
    const lon = typed("lon", -180, 180);
    if (lat == null || lon == null) {
      $("form-error").textContent = t("check.bad");
      return;
    }
    check(lon, lat);
  });
  const locate = $("locate");
  if (!("geolocation" in navigator)) locate.hidden = true;
  locate.addEventListener("click", () => {
    navigator.geolocation.getCurrentPosition(
      (position) => check(position.coords.longitude, position.coords.latitude),
      () => { $("form-error").textContent = t("check.no_location"); },
      { enableHighAccuracy: true, timeout: 10_000 },
    );
  });
  loadIncidents();
  setInterval(loadIncidents, REFRESH_MS);
}

if (LANGUAGES.length) start();
