// The command board: every open incident on one screen (a wall display), live.
// Stage, SLA clocks counting down, households, deliveries by channel, and the areas on a map.

import { enc, get, getAll } from "./api.js";
import { append, h, leafletText, replace } from "./dom.js";
import { dateTime, label, number, t, time } from "./i18n.js";
import { SEVERITY_COLOURS, createMap } from "./map.js";
import { deliveryBars, drillBadge, severityBadge, slaList, statusBadge, tickSlas } from "./widgets.js";

const L = window.L;
const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };

export function mount(main, ctx) {
  const view = new Board(main, ctx);
  view.init();
  return view;
}

class Board {
  constructor(main, ctx) {
    this.main = main;
    this.ctx = ctx;
    this.incidents = new Map(); // id -> {incident, playbook, counts}
    this.timers = new Map(); // id -> pending re-read of its playbook (one entry per incident, removed when done)
    this.unmounted = false;
    this.onLive = (ev) => this.live(ev.detail);
    this.onStatus = (ev) => {
      if (ev.detail.state === "live" && ev.detail.restored) this.load();
    };
  }

  async init() {
    this.summaryEl = h("p", { class: "board-summary", "aria-live": "polite" });
    this.clockEl = h("span", { class: "board-clock" });
    // The cards scroll in their own column (a wall display with many incidents never cuts
    // one off); the map keeps the rest of the screen, whole.
    this.cardsEl = h("div", { class: "cards", id: "board-cards", role: "region", tabindex: "0", "aria-labelledby": "board-cards-title" });
    this.mapEl = h("div", { class: "map", id: "board-map", tabindex: "0" });
    append(this.main, h("div", { class: "board" },
      h("div", { class: "board-head" }, h("h1", {}, t("board.title")), this.summaryEl, this.clockEl),
      h("div", { class: "board-body" },
        h("section", { class: "board-cards-wrap" }, h("h2", { class: "area-title", id: "board-cards-title" }, t("board.cards")), this.cardsEl),
        h("section", { class: "board-map-wrap", "aria-labelledby": "board-map-title" },
          h("h2", { class: "area-title", id: "board-map-title" }, t("board.map")), this.mapEl))));
    this.main.classList.add("view-board");
    this.ctx.live.addEventListener("message", this.onLive);
    this.ctx.live.addEventListener("status", this.onStatus);
    this.ticker = setInterval(() => this.tick(), 1000);
    this.tick();
    const [handle] = await Promise.all([createMap(this.mapEl), this.load()]);
    if (this.unmounted) {
      handle.map.remove(); // left before the map was ready
      return;
    }
    this.handle = handle;
    this.areas = L.featureGroup().addTo(handle.map);
    this.drawAreas();
    this.fitAreas(); // the whole service area when no incident has an area yet
    handle.map.on("resize", () => this.fitAreas()); // a window or layout change: all areas in view again
  }

  /** The map shows where the incidents are (the whole service area when none has an area). */
  fitAreas() {
    const bounds = this.areas.getBounds();
    if (bounds.isValid()) this.handle.map.fitBounds(bounds.pad(0.15), { maxZoom: 16, padding: [80, 30], animate: false });
    else this.handle.fit();
  }

  unmount() {
    this.unmounted = true;
    this.ctx.live.removeEventListener("message", this.onLive);
    this.ctx.live.removeEventListener("status", this.onStatus);
    clearInterval(this.ticker);
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    if (this.handle) this.handle.map.remove();
    this.handle = null;
    this.main.classList.remove("view-board");
  }

  async load() {
    const { incidents } = await getAll("/api/incidents?status=open", "incidents");
    if (this.unmounted) return;
    const seen = new Set();
    await Promise.all(incidents.map(async (incident) => {
      seen.add(incident.id);
      const entry = await this.fetchDetails(incident);
      this.incidents.set(incident.id, entry);
    }));
    for (const id of [...this.incidents.keys()]) if (!seen.has(id)) this.incidents.delete(id);
    this.render();
  }

  async fetchDetails(incident) {
    const base = `/api/incidents/${enc(incident.id)}`;
    const [playbook, deliveries] = await Promise.all([
      get(`${base}/playbook`).catch(() => null),
      get(`${base}/deliveries?limit=1`).catch(() => ({ counts: {} })),
    ]);
    return { incident, playbook, counts: deliveries.counts, updated: new Date() };
  }

  live(msg) {
    if (msg.type === "event") {
      const inc = msg.incident;
      const open = !["closed", "cancelled"].includes(inc.status);
      if (!open) {
        this.incidents.delete(inc.id);
        clearTimeout(this.timers.get(inc.id));
        this.timers.delete(inc.id);
        this.render();
        return;
      }
      const entry = this.incidents.get(inc.id) || { incident: inc, playbook: null, counts: {} };
      entry.incident = inc;
      entry.updated = new Date();
      this.incidents.set(inc.id, entry);
      this.renderCard(inc.id);
      this.renderSummary();
      this.drawAreas();
      // Stage, SLA clocks and ETR come from the playbook view: read it again, once per burst.
      clearTimeout(this.timers.get(inc.id));
      this.timers.set(inc.id, setTimeout(async () => {
        this.timers.delete(inc.id);
        const fresh = await this.fetchDetails(inc).catch(() => null);
        if (this.unmounted) return;
        const current = this.incidents.get(inc.id);
        if (!fresh || !current) return;
        current.playbook = fresh.playbook;
        if (!current.countsLive) current.counts = fresh.counts;
        this.renderCard(inc.id);
        this.renderSummary();
      }, 400));
    } else if (msg.type === "deliveries") {
      const entry = this.incidents.get(msg.incident_id);
      if (!entry) return;
      entry.counts = msg.counts;
      entry.countsLive = true;
      entry.updated = new Date();
      this.renderCard(msg.incident_id);
    }
  }

  sorted() {
    return [...this.incidents.values()].sort((a, b) =>
      (SEVERITY_RANK[a.incident.severity] - SEVERITY_RANK[b.incident.severity]) || a.incident.declared_at.localeCompare(b.incident.declared_at));
  }

  render() {
    const entries = this.sorted();
    if (!entries.length) replace(this.cardsEl, h("p", { class: "muted empty" }, t("board.none")));
    else replace(this.cardsEl, entries.map((e) => this.card(e)));
    this.renderSummary();
    this.drawAreas();
    tickSlas(this.cardsEl);
  }

  renderCard(id) {
    const entry = this.incidents.get(id);
    const old = this.cardsEl.querySelector(`[data-incident="${CSS.escape(id)}"]`);
    if (!entry) return;
    if (!old) {
      this.render();
      return;
    }
    const card = this.card(entry);
    old.replaceWith(card);
    tickSlas(card);
  }

  card({ incident: inc, playbook: pb, counts, updated }) {
    const stage = pb && pb.stages ? (pb.stages.find((s) => s.current) || {}).title : null;
    const breached = pb && pb.slas ? pb.slas.some((s) => s.state === "breached") : false;
    const fact = (k, v, id) => h("div", { class: "fact" }, h("span", { class: "fact-k" }, k), h("span", { class: "fact-v", dataset: id ? { fact: id } : {} }, v));
    return h("article", { class: `card sev-${inc.severity}${breached ? " breached" : ""}`, dataset: { incident: inc.id }, tabindex: "0", "aria-labelledby": `card-${inc.id}`,
      onclick: () => this.focusArea(inc.id), onkeydown: (ev) => ev.key === "Enter" && this.focusArea(inc.id) },
    h("header", {},
      severityBadge(inc.severity), statusBadge(inc.status), drillBadge(inc),
      h("h2", { id: `card-${inc.id}` }, inc.title),
      h("span", { class: "muted small" }, `${inc.id} · ${label("kind", inc.kind)}`)),
    h("div", { class: "facts-row" },
      fact(t("incident.stage"), stage || inc.stage || "–", "stage"),
      fact(t("incident.households"), inc.households === null || inc.households === undefined ? t("incident.noarea") : number(inc.households), "households"),
      fact(t("playbook.etr"), pb && pb.etr ? dateTime(pb.etr) : "–", "etr"),
      fact(t("incident.owner"), inc.owner || "–", "owner"),
      pb && pb.advisory ? fact(t("playbook.advisory"), label("advisory", pb.advisory), "advisory") : null),
    pb && pb.slas && pb.slas.length ? slaList(pb.slas) : null,
    deliveryBars(counts || {}),
    h("p", { class: "muted small updated" }, t("board.updated", { time: time(updated, true) })));
  }

  renderSummary() {
    const entries = [...this.incidents.values()];
    const households = entries.reduce((n, e) => n + (e.incident.households || 0), 0);
    const breaches = entries.reduce((n, e) => n + (e.playbook && e.playbook.slas ? e.playbook.slas.filter((s) => s.state === "breached").length : 0), 0);
    replace(this.summaryEl,
      h("span", {}, t("board.open", { count: entries.length })), " · ",
      h("span", {}, t("board.households", { count: households })),
      breaches ? [" · ", h("span", { class: "breach-count" }, t("board.breaches", { count: breaches }))] : null);
  }

  tick() {
    this.clockEl.textContent = time(new Date(), true);
    tickSlas(this.cardsEl);
  }

  drawAreas() {
    if (!this.areas) return;
    this.areas.clearLayers();
    this.areaById = new Map();
    const shapes = new Map();
    for (const { incident: inc } of this.incidents.values()) {
      if (!inc.area) continue;
      const colour = SEVERITY_COLOURS[inc.severity];
      // Labelled on the map itself: nobody hovers over a wall display.
      const layer = L.geoJSON(inc.area, { style: { color: colour, weight: 3, fillColor: colour, fillOpacity: 0.25 } })
        .bindTooltip(leafletText(`${inc.id} · ${inc.title}`), { permanent: true, direction: "center", className: `area-label sev-${inc.severity}` })
        .addTo(this.areas);
      this.areaById.set(inc.id, layer);
      shapes.set(inc.id, JSON.stringify(inc.area));
    }
    // A new area, or one that changed, may lie outside what the map shows: show them all
    // again (a wall display has nobody to pan it). Updates that leave the areas alone keep
    // the view, so a card clicked to zoom in stays zoomed.
    const before = this.shapes || new Map();
    const changed = [...shapes].some(([id, area]) => before.get(id) !== area);
    this.shapes = shapes;
    if (changed && this.handle) this.fitAreas();
  }

  focusArea(id) {
    const layer = this.areaById && this.areaById.get(id);
    if (layer && layer.getBounds().isValid()) this.handle.map.fitBounds(layer.getBounds(), { padding: [40, 40], maxZoom: 16 });
  }
}
