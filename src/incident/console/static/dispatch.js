// The dispatcher's view: the triage queue and open incidents (list and map), declaring, the
// area (drawn polygon, zones, or the isolation of a broken pipe), the notice composer with
// previews and approval, playbook stages, ETR, notes and hand-over.

import { ApiError, can, enc, get, getAll, post, put } from "./api.js";
import { append, ask, h, leafletText, replace, tabs, toast } from "./dom.js";
import { dateTime, describeEvent, label, languageName, list, number, relative, t } from "./i18n.js";
import { PolygonDraw, SEVERITY_COLOURS, areaLayer, createMap, layerSwitches, layerTitle } from "./map.js";
import { deliveryBars, drillBadge, severityBadge, slaList, statusBadge, tickSlas } from "./widgets.js";

const L = window.L;
const KINDS = ["main_break", "unplanned_outage", "planned_outage", "low_pressure", "contamination", "gas_leak", "heat_outage"];
const UTILITIES = ["water", "gas", "heat"];
const SEVERITIES = ["low", "medium", "high", "critical"];
const TEMPLATES = ["main_break", "unplanned_outage", "planned_outage", "low_pressure", "boil_water", "do_not_drink", "do_not_use", "gas_leak", "heat_outage", "etr_update", "restored", "advisory_lifted", "follow_up"];
const ADVISORIES = ["boil_water", "do_not_drink", "do_not_use"];
const PRIORITIES = ["medical", "critical_facility", "vulnerable"];
const CHANNELS = ["sms", "voice", "push", "email"];
const TRANSITIONS = {
  declared: ["active", "cancelled"],
  active: ["restoring", "monitoring", "closed", "cancelled"],
  restoring: ["active", "monitoring", "closed"],
  monitoring: ["active", "closed"],
  closed: [],
  cancelled: [],
};
const TEMPLATE_FOR_KIND = {
  main_break: "main_break", unplanned_outage: "unplanned_outage", planned_outage: "planned_outage",
  low_pressure: "low_pressure", contamination: "boil_water", gas_leak: "gas_leak", heat_outage: "heat_outage",
};
const ID = "/api/incidents/{incident_id}";
// The triage queue kept in memory: the newest reports (the service lists at most 1000 too).
const MAX_REPORTS = 1000;
const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };

/** Most severe first; within a severity the one waiting longest (oldest) first. */
export function bySeverityThenAge(severity, at) {
  return (a, b) => ((SEVERITY_RANK[severity(a)] ?? 9) - (SEVERITY_RANK[severity(b)] ?? 9)) || String(at(a)).localeCompare(String(at(b)));
}
const REPORT_ORDER = bySeverityThenAge((s) => s.report.severity, (s) => new Date(s.report.observed_at).toISOString());
const INCIDENT_ORDER = bySeverityThenAge((i) => i.severity, (i) => i.declared_at);

export function mount(main, ctx, arg) {
  const view = new DispatchView(main, ctx);
  view.init(arg);
  return view;
}

function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, hint ? h("p", { class: "hint" }, hint) : null);
}

function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

function table(caption, rows) {
  return h("table", { class: "mini" }, h("caption", {}, caption),
    h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "num" }, v)))));
}

/** "N households, M messages (SMS a, voice b)" with the numbers as data for tests. */
function audienceLine(counts) {
  return h("p", { class: "audience" }, h("strong", { id: "preview-audience", dataset: { households: String(counts.households), deliveries: String(counts.deliveries) } },
    t("notice.audience.count", { households: number(counts.households), deliveries: number(counts.deliveries) })),
  " (", list(Object.entries(counts.by_channel || {}).map(([ch, k]) => `${label("channel", ch)} ${number(k)}`)), ")");
}

/** Each text that goes out, per channel and language, with its households and SMS parts. */
function previewCards(previews) {
  const byChannel = new Map();
  for (const p of previews || []) {
    if (!byChannel.has(p.channel)) byChannel.set(p.channel, []);
    byChannel.get(p.channel).push(p);
  }
  return h("div", { class: "previews" }, [...byChannel].map(([channel, cards]) => h("section", { class: "channel-group", dataset: { channel } },
    h("h4", {}, label("channel", channel)),
    cards.map((p) => h("article", { class: "preview-card", dataset: { channel: p.channel, language: p.language_requested, households: String(p.households) } },
      h("header", {}, h("strong", {}, languageName(p.language_requested)),
        h("span", { class: "badge", dataset: { count: "households" } }, t("notice.text.households", { count: number(p.households) })),
        p.encoding ? h("span", { class: "badge", dataset: { encoding: p.encoding } }, p.encoding === "gsm7" ? "GSM-7" : "UCS-2") : null,
        p.segments ? h("span", { class: `badge${p.segments > 3 ? " sev-high" : ""}`, dataset: { segments: String(p.segments) } }, t("notice.segments", { count: p.segments })) : null,
        h("span", { class: "muted small" }, t("notice.chars", { count: number(p.characters) }))),
      p.fell_back ? h("p", { class: "warn small" }, t("notice.fallback", { requested: languageName(p.language_requested), used: languageName(p.language_used) })) : null,
      p.title ? h("p", { class: "push-title" }, p.title) : null,
      h("pre", { class: "text", lang: p.language_used, dataset: { text: "" } }, p.body || p.text),
      (p.warnings || []).filter((w) => !w.startsWith("no ") || w.includes("area text")).map((w) => h("p", { class: "warn small" }, w)))))));
}

class DispatchView {
  constructor(main, ctx) {
    this.main = main;
    this.ctx = ctx;
    this.reports = [];
    this.incidents = [];
    this.selected = null;
    this.incident = null;
    this.side = "reports";
    this.tab = "area";
    this.tool = null;
    this.drawing = null;
    this.refreshTimer = null;
    this.onLive = (ev) => this.live(ev.detail);
    this.onStatus = (ev) => {
      if (ev.detail.state === "live" && ev.detail.restored) this.reload();
    };
    this.ticker = null;
    this.unmounted = false;
  }

  async init(arg) {
    this.sideEl = h("aside", { class: "side", "aria-label": t("dispatch.title") });
    this.mapEl = h("div", { class: "map", id: "dispatch-map", tabindex: "0" });
    this.mapTools = h("div", { class: "map-tools" });
    this.detailEl = h("aside", { class: "detail", "aria-live": "off" });
    append(this.main, h("div", { class: "dispatch" },
      this.sideEl, h("div", { class: "map-wrap" }, this.mapEl, this.mapTools), this.detailEl));
    this.main.classList.add("view-dispatch");
    this.renderDetailEmpty();
    this.ctx.live.addEventListener("message", this.onLive);
    this.ctx.live.addEventListener("status", this.onStatus);
    this.ticker = setInterval(() => tickSlas(this.detailEl), 1000);
    const [handle] = await Promise.all([createMap(this.mapEl), this.loadLists()]);
    if (this.unmounted) {
      handle.map.remove(); // left before the map was ready
      return;
    }
    this.handle = handle;
    this.mapTools.append(layerSwitches(handle, h));
    this.reportLayer = L.layerGroup().addTo(handle.map);
    this.incidentLayer = L.layerGroup().addTo(handle.map);
    this.selectedLayer = L.layerGroup().addTo(handle.map);
    this.renderMarkers();
    this.setArg(this.wanted === undefined ? arg : this.wanted);
  }

  unmount() {
    this.unmounted = true;
    this.ctx.live.removeEventListener("message", this.onLive);
    this.ctx.live.removeEventListener("status", this.onStatus);
    clearInterval(this.ticker);
    clearTimeout(this.refreshTimer);
    if (this.drawing) this.drawing.stop();
    this.drawing = null;
    if (this.handle) this.handle.map.remove();
    this.handle = null;
    this.main.classList.remove("view-dispatch");
  }

  async reload() {
    await this.loadLists();
    this.renderMarkers();
    if (this.selected) this.refresh();
  }

  async loadLists() {
    const [reports, incidents] = await Promise.all([getAll("/api/reports?status=unassigned", "reports"), getAll("/api/incidents?status=open", "incidents")]);
    this.reports = reports.reports;
    this.incidents = incidents.incidents;
    this.renderSide();
  }

  // --- the left column: triage queue and open incidents -------------------------------

  renderSide() {
    const select = (id) => {
      this.side = id;
      this.renderSide();
      this.sideEl.querySelector(`#tab-${id}`).focus();
    };
    const head = h("div", { class: "side-head" },
      h("h1", {}, t("dispatch.title")),
      can("POST", "/api/incidents") ? h("button", { type: "button", class: "primary", id: "new-incident", onclick: () => this.declareNew() }, t("dispatch.new")) : null);
    const tablist = tabs(t("dispatch.title"), [
      ["reports", t("dispatch.triage", { count: number(this.reports.length) })],
      ["incidents", t("dispatch.open", { count: number(this.incidents.length) })],
    ], this.side, select);
    const body = h("div", { class: "side-list", role: "tabpanel", "aria-labelledby": `tab-${this.side}` },
      this.side === "reports" ? this.reportList() : this.incidentList());
    replace(this.sideEl, head, tablist, body);
  }

  reportList() {
    if (!this.reports.length) return h("p", { class: "muted empty" }, t("dispatch.empty.reports"));
    return h("ul", { class: "items", id: "reports" }, [...this.reports].sort(REPORT_ORDER).map((stored) => {
      const r = stored.report;
      const asset = r.asset ? `${label("asset", r.asset.type)} ${r.asset.id}` : "";
      return h("li", { class: `item sev-${r.severity}`, dataset: { report: r.report_id, severity: r.severity, observed: r.observed_at } },
        h("div", { class: "item-head" }, severityBadge(r.severity), h("strong", {}, label("kind", r.kind)),
          h("span", { class: "muted" }, ` · ${label("utility", r.utility)} · ${label("source", r.source)}`)),
        r.summary ? h("p", { class: "summary" }, r.summary) : null,
        h("p", { class: "muted small" }, t("report.observed", { time: relative(r.observed_at) }), asset ? ` · ${asset}` : ""),
        h("div", { class: "actions" },
          can("POST", "/api/reports/{report_id}/declare") ? h("button", { type: "button", class: "small primary", onclick: () => this.declareFrom(stored) }, t("report.declare")) : null,
          can("POST", "/api/reports/{report_id}/link") && this.incidents.length ? h("button", { type: "button", class: "small", onclick: () => this.linkReport(stored) }, t("report.link")) : null,
          can("POST", "/api/reports/{report_id}/dismiss") ? h("button", { type: "button", class: "small", onclick: () => this.dismiss(stored) }, t("report.dismiss")) : null,
          r.location ? h("button", { type: "button", class: "small", onclick: () => this.handle && this.handle.map.setView([r.location.lat, r.location.lon], 17) }, t("report.show")) : null));
    }));
  }

  incidentList() {
    if (!this.incidents.length) return h("p", { class: "muted empty" }, t("dispatch.empty.incidents"));
    return h("ul", { class: "items", id: "incidents" }, [...this.incidents].sort(INCIDENT_ORDER).map((inc) =>
      h("li", {},
        h("a", { class: `item link sev-${inc.severity}`, href: `#/dispatch/${enc(inc.id)}`, "aria-current": inc.id === this.selected ? "true" : false, dataset: { incident: inc.id } },
          h("div", { class: "item-head" }, severityBadge(inc.severity), drillBadge(inc), h("strong", {}, inc.title)),
          h("p", { class: "muted small" }, `${inc.id} · `, label("status", inc.status),
            inc.households !== null && inc.households !== undefined ? ` · ${t("dispatch.households", { count: inc.households })}` : "")))));
  }

  renderMarkers() {
    if (!this.handle) return;
    this.reportLayer.clearLayers();
    for (const stored of this.reports) {
      const r = stored.report;
      if (!r.location) continue;
      L.circleMarker([r.location.lat, r.location.lon], {
        radius: 8, color: "#0b0f14", weight: 2, fillColor: SEVERITY_COLOURS[r.severity], fillOpacity: 0.95,
      }).bindTooltip(leafletText(`${label("kind", r.kind)}: ${r.summary || r.report_id}`)).on("click", () => {
        this.side = "reports";
        this.renderSide();
        const li = this.sideEl.querySelector(`[data-report="${CSS.escape(r.report_id)}"]`);
        if (li) {
          li.scrollIntoView({ block: "nearest" });
          li.classList.add("flash");
          const button = li.querySelector("button");
          if (button) button.focus();
        }
      }).addTo(this.reportLayer);
    }
    this.incidentLayer.clearLayers();
    for (const inc of this.incidents) {
      if (!inc.area || inc.id === this.selected) continue;
      L.geoJSON(inc.area, { style: { color: SEVERITY_COLOURS[inc.severity], weight: 1, fillOpacity: 0.08, dashArray: "4 4" } })
        .bindTooltip(leafletText(`${inc.id}: ${inc.title}`)).on("click", () => this.ctx.navigate("dispatch", inc.id)).addTo(this.incidentLayer);
    }
  }

  // --- live updates ------------------------------------------------------------------

  live(msg) {
    if (msg.type === "report") {
      const stored = msg.report;
      const id = stored.report.report_id;
      const known = this.reports.findIndex((r) => r.report.report_id === id);
      if (stored.status === "unassigned") {
        if (known >= 0) this.reports[known] = stored;
        else {
          this.reports.unshift(stored);
          if (this.reports.length > MAX_REPORTS) this.reports.length = MAX_REPORTS;
          toast(t("report.new", { summary: stored.report.summary || label("kind", stored.report.kind) }));
        }
      } else if (known >= 0) this.reports.splice(known, 1);
      this.renderSide();
      this.renderMarkers();
    } else if (msg.type === "event") {
      const inc = msg.incident;
      const i = this.incidents.findIndex((x) => x.id === inc.id);
      const open = !["closed", "cancelled"].includes(inc.status);
      if (i >= 0 && open) this.incidents[i] = inc;
      else if (i >= 0) this.incidents.splice(i, 1);
      else if (open) this.incidents.unshift(inc);
      this.renderSide();
      this.renderMarkers();
      if (inc.id === this.selected) {
        this.incident = inc;
        this.renderHead();
        this.scheduleRefresh(msg.event.type);
      }
    } else if (msg.type === "deliveries" && msg.incident_id === this.selected) {
      this.counts = msg.counts;
      this.renderDeliveries();
    }
  }

  scheduleRefresh(type) {
    this.pendingArea = this.pendingArea || type === "area_changed";
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 300);
  }

  // --- declaring -----------------------------------------------------------------------

  async declareNew() {
    const kind = select(KINDS.map((k) => [k, label("kind", k)]), "main_break");
    const utility = select(UTILITIES.map((u) => [u, label("utility", u)]), "water");
    const title = h("input", { type: "text", required: true, maxlength: "200", id: "declare-title" });
    const severity = select(SEVERITIES.map((s) => [s, label("severity", s)]), "high");
    const drill = h("input", { type: "checkbox", id: "declare-drill" });
    const body = h("div", { class: "form" },
      field(t("declare.kind"), kind), field(t("declare.utility"), utility), field(t("declare.title.field"), title),
      field(t("declare.severity"), severity), h("label", { class: "check" }, drill, " ", t("declare.drill")));
    const answer = await ask(t("declare.title"), body, [["cancel", t("common.cancel")], ["declare", t("declare.submit"), "primary"]]);
    if (answer !== "declare") return;
    try {
      const inc = await post("/api/incidents", {
        kind: kind.value, utility: utility.value, title: title.value.trim(), severity: severity.value, drill: drill.checked,
      });
      toast(t("declare.done", { id: inc.id }));
      this.upsert(inc);
      this.tab = "area";
      this.ctx.navigate("dispatch", inc.id);
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
    }
  }

  async declareFrom(stored) {
    try {
      const result = await post(`/api/reports/${enc(stored.report.report_id)}/declare`, {});
      this.reports = this.reports.filter((r) => r.report.report_id !== stored.report.report_id);
      this.upsert(result.incident);
      toast(t("report.declared", { id: result.incident.id }));
      const asset = stored.report.asset;
      this.pendingPipe = asset && asset.type === "pipe" ? asset.id : null;
      this.tab = "area";
      this.ctx.navigate("dispatch", result.incident.id);
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
    }
  }

  async linkReport(stored) {
    const to = select(this.incidents.map((i) => [i.id, `${i.id} · ${i.title}`]), this.selected || (this.incidents[0] || {}).id);
    const reason = h("input", { type: "text", maxlength: "1000" });
    const id = stored.report.report_id;
    const answer = await ask(t("report.link.title", { id }), h("div", { class: "form" }, field(t("report.link.to"), to), field(t("common.reason"), reason)),
      [["cancel", t("common.cancel")], ["link", t("report.link").replace("…", ""), "primary"]]);
    if (answer !== "link") return;
    await this.act(() => post(`/api/reports/${enc(id)}/link`, { incident_id: to.value, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) }), t("common.done"));
    this.reports = this.reports.filter((r) => r.report.report_id !== id);
    this.renderSide();
    this.renderMarkers();
  }

  async dismiss(stored) {
    const reason = h("input", { type: "text", maxlength: "1000", required: true });
    const id = stored.report.report_id;
    const answer = await ask(t("report.dismiss.title", { id }), h("div", { class: "form" }, field(t("common.reason.required"), reason)),
      [["cancel", t("common.cancel")], ["dismiss", t("report.dismiss").replace("…", ""), "danger"]]);
    if (answer !== "dismiss") return;
    await this.act(() => post(`/api/reports/${enc(id)}/dismiss`, { reason: reason.value.trim() }), t("common.done"));
    this.reports = this.reports.filter((r) => r.report.report_id !== id);
    this.renderSide();
    this.renderMarkers();
  }

  upsert(inc) {
    const i = this.incidents.findIndex((x) => x.id === inc.id);
    if (i >= 0) this.incidents[i] = inc;
    else this.incidents.unshift(inc);
    this.side = "incidents";
    this.renderSide();
  }

  async act(fn, done) {
    try {
      const result = await fn();
      if (done) toast(done);
      return result;
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
      return null;
    }
  }

  // --- the selected incident -----------------------------------------------------------

  setArg(id) {
    this.wanted = id;
    if (!this.handle) return; // init() selects it once the map is ready
    if (id === this.selected) return;
    if (this.drawing) this.stopDrawing();
    this.selected = id;
    this.incident = null;
    this.areaInfo = null;
    this.preview = null;
    this.counts = {};
    this.selectedLayer.clearLayers();
    this.renderSide();
    this.renderMarkers();
    if (!id) {
      this.renderDetailEmpty();
      return;
    }
    this.buildDetail(id);
  }

  renderDetailEmpty() {
    replace(this.detailEl, h("p", { class: "muted empty" }, t("dispatch.select")));
  }

  async buildDetail(id) {
    replace(this.detailEl, h("p", { class: "muted" }, t("common.loading")));
    try {
      this.incident = await get(`/api/incidents/${enc(id)}`);
    } catch (err) {
      replace(this.detailEl, h("p", { class: "error" }, t("common.error", { message: err.message })));
      return;
    }
    if (this.selected !== id) return;
    this.headEl = h("header", { class: "detail-head" });
    this.panels = {
      area: this.buildAreaPanel(),
      notice: this.buildNoticePanel(),
      playbook: h("div", { class: "panel-body" }),
      log: this.buildLogPanel(),
    };
    const names = [["area", t("tab.area")], ["notice", t("tab.notice")], ["playbook", t("tab.playbook")], ["log", t("tab.log")]];
    const selectTab = (name) => {
      this.tab = name;
      for (const [n] of names) {
        const tab = this.detailEl.querySelector(`#tab-${n}`);
        tab.setAttribute("aria-selected", String(n === name));
        tab.tabIndex = n === name ? 0 : -1;
        this.panels[n].hidden = n !== name;
      }
    };
    const panelWrap = Object.entries(this.panels).map(([name, el]) => {
      el.setAttribute("role", "tabpanel");
      el.setAttribute("aria-labelledby", `tab-${name}`);
      el.classList.add("panel");
      return el;
    });
    replace(this.detailEl, this.headEl, tabs(t("tab.area"), names, this.tab, selectTab), panelWrap);
    selectTab(this.tab);
    this.renderHead();
    await this.refresh();
    if (this.pendingPipe) {
      this.setTool("pipe");
      this.pipeInput.value = this.pendingPipe;
      this.pendingPipe = null;
      this.lookupPipe();
    }
    if (this.incident && this.incident.area) this.fitToArea();
  }

  renderHead() {
    const inc = this.incident;
    if (!inc || !this.headEl) return;
    const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    replace(this.headEl,
      h("h2", { id: "incident-title" }, inc.title),
      h("p", { class: "muted small" }, drillBadge(inc), `${inc.id} · ${label("kind", inc.kind)} · ${label("utility", inc.utility)}`),
      h("dl", { class: "facts" },
        fact(t("incident.status"), statusBadge(inc.status)),
        fact(t("incident.severity"), severityBadge(inc.severity)),
        fact(t("incident.owner"), inc.owner || t("common.none")),
        fact(t("incident.stage"), this.stageTitle(inc.stage) || t("common.none")),
        fact(t("incident.households"), h("strong", { id: "incident-households" }, inc.households === null || inc.households === undefined ? t("incident.noarea") : number(inc.households))),
        fact(t("incident.public"), this.publicFact(inc))),
      inc.awaiting_confirmation && can("POST", `${ID}/confirm`)
        ? h("p", {}, h("span", { class: "badge sev-high" }, t("incident.awaiting")), " ",
          h("button", { type: "button", class: "primary small", onclick: () => this.act(() => post(`/api/incidents/${enc(inc.id)}/confirm`), t("common.done")) }, t("incident.confirm")))
        : null);
  }

  /** Whether residents see the incident on /public/, and the switch (never for a drill). */
  publicFact(inc) {
    if (inc.drill) return t("incident.public.drill");
    const shown = h("span", { id: "incident-public", "data-public": String(Boolean(inc.public)) },
      inc.public ? t("incident.public.yes") : t("incident.public.no"));
    const finished = inc.status === "closed" || inc.status === "cancelled";
    if (finished || !can("POST", `${ID}/public`)) return shown;
    const toggle = async () => {
      const updated = await this.act(() => post(`/api/incidents/${enc(inc.id)}/public`, { public: !inc.public }), t("common.done"));
      if (updated && this.selected === updated.id) {
        this.incident = updated;
        this.renderHead();
      }
    };
    return h("span", {}, shown, " ",
      h("button", { type: "button", class: "small", id: "toggle-public", onclick: toggle },
        inc.public ? t("incident.public.hide") : t("incident.public.show")), " ",
      h("a", { href: "/public/", target: "_blank", rel: "noopener" }, t("incident.public.page")));
  }

  stageTitle(id) {
    const stages = (this.playbook && this.playbook.stages) || [];
    const stage = stages.find((s) => s.id === id);
    return stage ? stage.title : id;
  }

  /** Re-read what changes as the incident moves: area, notices, deliveries, playbook, timeline. */
  async refresh() {
    const id = this.selected;
    if (!id) return;
    const base = `/api/incidents/${enc(id)}`;
    const [incident, area, notices, deliveries, playbook, timeline] = await Promise.all([
      get(base), get(`${base}/area`), get(`${base}/notices`), get(`${base}/deliveries?limit=1`),
      get(`${base}/playbook`).catch(() => null), getAll(`${base}/timeline`, "events"),
    ]).catch((err) => {
      toast(t("common.error", { message: err.message }), "error");
      return [];
    });
    if (!incident || this.selected !== id) return;
    this.incident = incident;
    this.notices = notices.notices;
    this.counts = deliveries.counts;
    this.playbook = playbook;
    this.events = timeline.events;
    const lastArea = [...timeline.events].reverse().find((e) => e.type === "area_changed");
    this.areaInfo = lastArea ? {
      households: lastArea.data.households_after, by_priority: lastArea.data.by_priority || {}, by_language: lastArea.data.by_language || {},
      valves_to_close: area.features.filter((f) => f.properties.role === "valve_to_close").map((f) => f.properties.id),
      affected_pipes: area.features.filter((f) => f.properties.role === "affected_pipe").map((f) => f.properties.id),
    } : null;
    this.drawArea(area);
    this.renderHead();
    this.renderAreaResult();
    this.renderNotices();
    this.renderDeliveries();
    this.renderPlaybook();
    this.renderLog();
  }

  drawArea(collection) {
    this.selectedLayer.clearLayers();
    if (collection && collection.features.length) {
      areaLayer(collection, this.incident.severity).addTo(this.selectedLayer);
    }
  }

  fitToArea() {
    const layers = this.selectedLayer.getLayers();
    if (!layers.length) return;
    const bounds = layers[0].getBounds();
    if (bounds.isValid()) this.handle.map.fitBounds(bounds, { padding: [30, 30], maxZoom: 17 });
  }

  // --- area ----------------------------------------------------------------------------

  buildAreaPanel() {
    const steer = can("PUT", `${ID}/area`);
    this.opSelect = select([["replace", t("area.op.replace")], ["add", t("area.op.add")], ["remove", t("area.op.remove")]], "replace", { id: "area-op" });
    this.toolButtons = {};
    const toolButton = (name, text) => {
      const b = h("button", { type: "button", "aria-pressed": "false", id: `tool-${name}`, onclick: () => this.setTool(this.tool === name ? null : name) }, text);
      this.toolButtons[name] = b;
      return b;
    };
    this.toolBody = h("div", { class: "tool-body" });
    this.areaResultEl = h("section", { class: "area-result", "aria-live": "polite", "aria-label": t("area.result") });
    return h("div", { class: "panel-body" },
      steer ? [
        field(t("area.op"), this.opSelect),
        h("div", { class: "tool-buttons", role: "group" }, toolButton("draw", t("area.draw")), toolButton("zones", t("area.zones")), toolButton("pipe", t("area.pipe"))),
        this.toolBody,
      ] : null,
      this.areaResultEl);
  }

  setTool(name) {
    if (this.drawing) this.stopDrawing();
    this.tool = name;
    for (const [n, b] of Object.entries(this.toolButtons)) b.setAttribute("aria-pressed", String(n === name));
    this.handle.onZoneClick = null;
    this.handle.onPipeClick = null;
    this.mapEl.classList.toggle("picking", name === "zones" || name === "pipe");
    if (name === "draw") this.startDrawing();
    else if (name === "zones") this.zoneTool();
    else if (name === "pipe") this.pipeTool();
    else replace(this.toolBody);
  }

  startDrawing() {
    const count = h("p", { class: "draw-count", "aria-live": "polite" }, t("area.draw.points", { count: 0 }));
    replace(this.toolBody,
      h("p", { class: "hint" }, t("area.draw.help")), count,
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", id: "draw-finish", onclick: () => this.drawing && this.drawing.finish() }, t("area.draw.finish")),
        h("button", { type: "button", onclick: () => this.drawing && this.drawing.cancel() }, t("area.draw.cancel"))));
    this.drawing = new PolygonDraw(this.handle, {
      onChange: (n, problem) => {
        count.textContent = problem || t("area.draw.points", { count: n });
      },
      onDone: (polygon) => {
        this.drawing = null;
        this.setTool(null);
        this.putArea({ geometry: polygon }, polygon);
      },
      onCancel: () => {
        this.drawing = null;
        this.setTool(null);
        toast(t("area.draw.cancelled"));
      },
    });
    this.drawing.start();
    this.mapEl.focus({ preventScroll: true });
  }

  stopDrawing() {
    this.drawing.stop();
    this.drawing = null;
  }

  zoneTool() {
    const groups = new Map();
    for (const [id, lyr] of this.handle.zoneById) {
      const p = lyr.feature.properties;
      if (!groups.has(p.layer)) groups.set(p.layer, []);
      groups.get(p.layer).push(p);
    }
    const boxes = new Map();
    const fieldsets = [...groups].map(([layer, zones]) => h("fieldset", { class: "zones" }, h("legend", {}, layerTitle(layer)),
      zones.map((z) => {
        const box = h("input", { type: "checkbox", value: z.id, onchange: () => this.highlightZone(z.id, box.checked) });
        boxes.set(z.id, box);
        return h("label", { class: "check" }, box, ` ${z.id} · ${z.name || ""}`);
      })));
    this.handle.onZoneClick = (props) => {
      const box = boxes.get(props.id);
      if (!box) return;
      box.checked = !box.checked;
      this.highlightZone(props.id, box.checked);
    };
    replace(this.toolBody, h("p", { class: "hint" }, t("area.zones.help")), fieldsets,
      h("button", { type: "button", class: "primary", id: "zones-apply", onclick: () => {
        const ids = [...boxes.values()].filter((b) => b.checked).map((b) => b.value);
        if (!ids.length) {
          toast(t("area.zones.none"), "error");
          return;
        }
        for (const id of ids) this.highlightZone(id, false);
        this.putArea({ zones: ids });
      } }, t("area.zones.apply")));
  }

  highlightZone(id, on) {
    const lyr = this.handle.zoneById.get(id);
    if (!lyr) return;
    if (on) lyr.setStyle({ fillOpacity: 0.35, fillColor: "#5cc8ff", weight: 3 });
    else lyr.setStyle({ fillOpacity: 0.04, weight: 2, fillColor: lyr.options.color });
  }

  pipeTool() {
    this.pipeInput = h("input", { type: "text", id: "pipe-id", autocomplete: "off", spellcheck: "false", onkeydown: (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.lookupPipe();
      }
    } });
    // The look-up and the isolation use the same valve list: change it and the look-up runs again.
    this.inoperableInput = h("input", { type: "text", id: "pipe-inoperable", autocomplete: "off", onchange: () => this.pipeInput.value.trim() && this.lookupPipe() });
    this.pipeResult = h("div", { class: "pipe-result", "aria-live": "polite" });
    this.handle.onPipeClick = (props) => {
      this.pipeInput.value = props.id;
      this.lookupPipe();
    };
    replace(this.toolBody, h("p", { class: "hint" }, t("area.pipe.help")),
      h("div", { class: "row" }, field(t("area.pipe.id"), this.pipeInput),
        h("button", { type: "button", onclick: () => this.lookupPipe() }, t("area.pipe.lookup"))),
      field(t("area.pipe.inoperable"), this.inoperableInput), this.pipeResult);
    this.pipeInput.focus();
  }

  async lookupPipe() {
    const id = this.pipeInput.value.trim();
    if (!id) return;
    const inoperable = this.inoperableValves();
    try {
      const query = inoperable.map((v) => `inoperable=${encodeURIComponent(v)}`).join("&");
      const pipe = await get(`/api/network/pipes/${enc(id)}${query ? `?${query}` : ""}`);
      const b = pipe.properties.if_broken;
      const lyr = this.handle.pipeById.get(id);
      if (lyr) {
        if (this.pipeHighlight) this.pipeHighlight.remove();
        this.pipeHighlight = L.polyline(lyr.getLatLngs(), { color: "#ffffff", weight: 6, opacity: 0.9 }).addTo(this.selectedLayer);
        this.handle.map.fitBounds(lyr.getBounds(), { maxZoom: 17, padding: [80, 80] });
      }
      replace(this.pipeResult,
        h("p", {}, t("area.pipe.ifbroken", { pipe: id, valves: b.valves_to_close.length, pipes: b.affected_pipes, households: b.households })),
        b.valves_to_close.length ? h("p", { class: "muted small", id: "pipe-valves" }, `${t("area.valves")}: ${b.valves_to_close.join(", ")}`) : null,
        inoperable.length ? h("p", { class: "muted small" }, t("area.pipe.inoperable.applied", { valves: inoperable.join(", ") })) : null,
        h("button", { type: "button", class: "primary", id: "pipe-isolate", onclick: () => {
          this.putArea({ isolate: { pipe: id, inoperable: this.inoperableValves() } });
        } }, t("area.pipe.isolate")));
    } catch (err) {
      replace(this.pipeResult, h("p", { class: "error", role: "alert" }, err.message));
    }
  }

  inoperableValves() {
    return this.inoperableInput.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
  }

  async putArea(body, polygon) {
    const id = this.selected;
    const request = { ...body, op: this.opSelect.value };
    this.areaResultEl.setAttribute("aria-busy", "true");
    try {
      const result = await put(`/api/incidents/${enc(id)}/area`, request);
      if (this.selected !== id) return;
      this.areaInfo = result;
      this.renderAreaResult();
      toast(t("area.updated", { count: result.households }));
      const area = await get(`/api/incidents/${enc(id)}/area`);
      this.drawArea(area);
      this.fitToArea();
    } catch (err) {
      if (err instanceof ApiError && err.code === "self_intersecting" && polygon) {
        replace(this.areaResultEl, h("p", { class: "error", role: "alert" }, t("area.selfintersecting"), " ", err.message),
          h("button", { type: "button", onclick: () => this.putArea({ ...body, repair: true }) }, t("area.repair")));
      } else {
        replace(this.areaResultEl, h("p", { class: "error", role: "alert" }, err.message));
      }
    } finally {
      this.areaResultEl.removeAttribute("aria-busy");
    }
  }

  renderAreaResult() {
    const a = this.areaInfo;
    if (!a) {
      replace(this.areaResultEl, h("p", { class: "muted" }, t("incident.noarea")));
      return;
    }
    const prio = Object.entries(a.by_priority || {}).sort((x, y) => y[1] - x[1]);
    const langs = Object.entries(a.by_language || {}).sort((x, y) => y[1] - x[1]);
    replace(this.areaResultEl,
      h("h3", {}, t("area.result")),
      h("p", { class: "big", id: "area-households", dataset: { households: String(a.households) } }, t("dispatch.households", { count: a.households })),
      // What the crew acts on first, above the breakdowns (in view at 1440x900).
      a.valves_to_close && a.valves_to_close.length
        ? h("p", { class: "valves" }, h("strong", {}, `${t("area.valves")}: `), h("span", { id: "valves-to-close" }, a.valves_to_close.join(", "))) : null,
      a.affected_pipes && a.affected_pipes.length ? h("p", { class: "muted small" }, t("area.dry", { count: a.affected_pipes.length })) : null,
      h("div", { class: "tables" },
        table(t("area.by.priority"), prio.map(([p, n]) => [label("priority", p || "none"), number(n)])),
        table(t("area.by.language"), langs.map(([l, n]) => [languageName(l), number(n)]))));
  }

  // --- notices -------------------------------------------------------------------------
  // The dispatcher sends only what they have read: Preview stores nothing; a planned notice
  // is approved in a dialog that shows every text that goes out (from GET of the notice);
  // held and stale notices are planned again, with the difference in households shown.

  buildNoticePanel() {
    const inc = this.incident;
    const where = inc.area_description || {};
    this.noticesEl = h("div", { class: "notices" });
    this.deliveriesEl = h("div", { class: "deliveries-wrap", "aria-live": "polite" });
    this.previewEl = h("div", { class: "preview", "aria-live": "polite" });
    const parts = [h("h3", {}, t("deliveries.title")), this.deliveriesEl, h("h3", {}, t("notice.list")), this.noticesEl];
    if (!can("POST", `${ID}/notices`)) return h("div", { class: "panel-body" }, parts);
    const c = (this.composer = {
      template: select(TEMPLATES.map((k) => [k, label("template", k)]), TEMPLATE_FOR_KIND[inc.kind] || "main_break", { id: "notice-template" }),
      channels: CHANNELS.map((ch) => h("input", { type: "checkbox", value: ch, checked: ch === "sms" || ch === "voice", dataset: { channel: ch } })),
      everyone: h("input", { type: "radio", name: "audience", value: "all", checked: true }),
      only: h("input", { type: "radio", name: "audience", value: "priority" }),
      priorities: PRIORITIES.map((p) => h("input", { type: "checkbox", value: p, checked: p === "medical" })),
      // Never the title: households read this. Empty: the incident's description or zone names.
      area: h("input", { type: "text", id: "notice-area", maxlength: "300", lang: "en", value: where.en || "", placeholder: t("notice.where.example.en") }),
      areaZh: h("input", { type: "text", id: "notice-area-zh", maxlength: "300", lang: "zh-CN", value: where["zh-CN"] || "", placeholder: t("notice.where.example.zh") }),
      note: h("input", { type: "text", id: "notice-note", maxlength: "500" }),
      advisory: select([["", t("advisory.none")], ...ADVISORIES.map((a) => [a, label("advisory", a)])], inc.kind === "contamination" ? "boil_water" : "", { id: "notice-advisory" }),
      etr: h("input", { type: "datetime-local", id: "notice-etr" }),
      start: h("input", { type: "datetime-local", id: "notice-start" }),
      end: h("input", { type: "datetime-local", id: "notice-end" }),
    });
    const saveWhere = can("PUT", `${ID}/area/description`)
      ? h("button", { type: "button", class: "small", id: "notice-area-save", onclick: () => this.saveWhere() }, t("notice.where.save")) : null;
    const form = (this.composerForm = h("form", { class: "composer", onsubmit: (ev) => {
      ev.preventDefault();
      this.previewNotice();
    } },
    h("h3", {}, t("notice.compose")),
    field(t("notice.template"), c.template),
    h("fieldset", {}, h("legend", {}, t("notice.channels")), c.channels.map((box) => h("label", { class: "check inline" }, box, " ", label("channel", box.value)))),
    h("fieldset", {}, h("legend", {}, t("notice.audience")),
      h("label", { class: "check" }, c.everyone, " ", t("notice.audience.all")),
      h("label", { class: "check" }, c.only, " ", t("notice.audience.priority")),
      h("div", { class: "indent" }, c.priorities.map((box) => h("label", { class: "check inline" }, box, " ", label("priority", box.value))))),
    h("fieldset", {}, h("legend", {}, t("notice.facts.area")),
      field(t("notice.where.en"), c.area),
      field(t("notice.where.zh"), c.areaZh, t("notice.where.hint")),
      saveWhere),
    field(t("notice.facts.note"), c.note),
    field(t("notice.facts.advisory"), c.advisory),
    field(t("notice.facts.etr"), c.etr),
    h("details", {}, h("summary", {}, `${t("notice.facts.start")} / ${t("notice.facts.end")}`), field(t("notice.facts.start"), c.start), field(t("notice.facts.end"), c.end)),
    h("button", { type: "submit", class: "primary", id: "notice-preview" }, t("notice.preview"))));
    return h("div", { class: "panel-body" }, form, this.previewEl, parts);
  }

  /** The notice the composer describes (the body of preview and of planning). */
  noticeBody() {
    const c = this.composer;
    const channels = c.channels.filter((b) => b.checked).map((b) => b.value);
    const iso = (input) => (input.value ? new Date(input.value).toISOString() : undefined);
    const facts = {};
    const where = {};
    if (c.area.value.trim()) where.en = c.area.value.trim();
    if (c.areaZh.value.trim()) where["zh-CN"] = c.areaZh.value.trim();
    if (Object.keys(where).length) facts.area_i18n = where;
    if (c.note.value.trim()) facts.note = c.note.value.trim();
    if (c.advisory.value) facts.advisory = c.advisory.value;
    for (const k of ["etr", "start", "end"]) if (c[k].value) facts[k] = iso(c[k]);
    const body = { template: c.template.value, channels, facts };
    if (c.only.checked) body.audience = { priority: c.priorities.filter((b) => b.checked).map((b) => b.value) };
    return body;
  }

  async saveWhere() {
    const where = this.noticeBody().facts.area_i18n;
    if (!where) {
      toast(t("notice.where.empty"), "error");
      return;
    }
    const saved = await this.act(() => put(`/api/incidents/${enc(this.selected)}/area/description`, where), t("notice.where.saved"));
    if (saved) this.refresh();
  }

  /** Counts and texts from POST …/notices/preview: nothing is stored, nothing numbered. */
  async previewNotice() {
    const body = this.noticeBody();
    replace(this.previewEl, h("p", { class: "muted" }, t("common.loading")));
    try {
      const preview = await post(`/api/incidents/${enc(this.selected)}/notices/preview`, body);
      this.renderPreview(preview, body);
    } catch (err) {
      replace(this.previewEl, h("p", { class: "error", role: "alert" }, err.message));
    }
  }

  renderPreview(preview, body) {
    const counts = preview.counts;
    const optedOut = Object.entries(counts.opted_out || {}).filter(([, v]) => v);
    const unconfirmed = Object.entries(counts.unconfirmed_priority || {}).filter(([, v]) => v);
    const missing = (preview.missing_facts || []).length > 0;
    const plan = can("POST", `${ID}/notices`) && !missing
      ? h("button", { type: "button", class: "primary", id: "notice-plan", onclick: () => this.planNotice(body) }, t("notice.plan")) : null;
    replace(this.previewEl,
      h("h3", {}, t("notice.previews")),
      h("p", { class: "muted small", id: "preview-unsaved" }, t("notice.preview.unsaved")),
      audienceLine(counts),
      counts.unreachable ? h("p", { class: "warn" }, t("notice.unreachable", { count: number(counts.unreachable) })) : null,
      optedOut.length ? h("p", { class: "muted small" }, t("notice.optedout", { list: list(optedOut.map(([ch, k]) => `${label("channel", ch)} ${number(k)}`)) })) : null,
      unconfirmed.length ? h("p", { class: "warn", id: "preview-unconfirmed" }, t("notice.unconfirmed", { list: list(unconfirmed.map(([p, k]) => `${label("priority", p)} ${number(k)}`)) })) : null,
      counts.needs_skipped && counts.needs_skipped.voice ? h("p", { class: "muted small" }, t("notice.needs.skipped", { count: number(counts.needs_skipped.voice) })) : null,
      missing ? h("p", { class: "error", role: "alert", id: "preview-missing" }, t("notice.missing.area")) : null,
      // Channels asked for that it would not go out on (an email without a template), and why.
      ...Object.entries(preview.skipped_channels || {}).map(([ch, why]) => h("p", { class: "warn", dataset: { skipped: ch } }, `${label("channel", ch)}: ${why}`)),
      previewCards(preview.previews),
      plan);
  }

  /** Store the plan (numbered, on the timeline), then offer its approval. */
  async planNotice(body) {
    const planned = await this.act(() => post(`/api/incidents/${enc(this.selected)}/notices`, body));
    if (!planned) return;
    const n = planned.notice;
    // The composer's settings are not beside what is approved: it folds away.
    if (this.composerForm) this.composerForm.hidden = true;
    replace(this.previewEl,
      h("p", { class: "big-text" }, t("notice.planned", { id: n.notice_id })),
      audienceLine(n.counts),
      this.noticeActions(n),
      h("button", { type: "button", class: "small", id: "notice-new", onclick: () => {
        this.composerForm.hidden = false;
        replace(this.previewEl);
      } }, t("notice.new")));
    await this.refresh();
  }

  /** The action a notice offers: approve (planned, current) or plan again (held, stale). */
  noticeActions(notice) {
    if (notice.status === "planned" && !notice.stale && can("POST", `${ID}/notices/{notice_id}/approve`)) {
      return h("button", { type: "button", class: "danger", dataset: { approve: notice.notice_id }, onclick: () => this.approve(notice) }, t("notice.approve"));
    }
    if ((notice.status === "held" || (notice.status === "planned" && notice.stale)) && can("POST", `${ID}/notices/{notice_id}/replan`)) {
      return h("button", { type: "button", class: "primary", dataset: { replan: notice.notice_id }, onclick: () => this.offerReplan(notice) }, t("notice.replan"));
    }
    return null;
  }

  /** The approval dialog: every text that goes out, as stored with the notice. */
  async approve(notice) {
    const base = `/api/incidents/${enc(this.selected)}/notices/${enc(notice.notice_id)}`;
    let fresh;
    try {
      fresh = await get(base);
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
      return;
    }
    if (fresh.status === "held" || fresh.stale) {
      await this.offerReplan(fresh);
      return;
    }
    if (fresh.status !== "planned") {
      toast(t("notice.not.planned", { id: fresh.notice_id, status: label("notice_status", fresh.status) }));
      this.refresh();
      return;
    }
    const counts = fresh.counts || {};
    const households = number(counts.households || 0);
    const deliveries = number(counts.deliveries || 0);
    const channels = list(Object.entries(counts.by_channel || {}).map(([ch, k]) => `${label("channel", ch)} ${number(k)}`));
    const others = (fresh.approvals || []).map((a) => a.by);
    const body = h("div", { class: "approve-dialog" },
      h("p", { class: "big-text", id: "approve-summary" }, t("notice.approve.body", { households, deliveries, channels })),
      h("p", {}, label("template", fresh.template)),
      this.incident.drill ? h("p", { class: "badge drill" }, t("notice.approve.drill")) : null,
      fresh.approvals_required > 1
        ? h("p", { class: "warn", id: "approve-two-person" }, t("notice.approve.two", { required: fresh.approvals_required, names: others.length ? list(others) : t("common.none") })) : null,
      h("h3", {}, t("notice.approve.texts")),
      h("div", { id: "approve-texts" }, previewCards(fresh.previews)));
    const answer = await ask(t("notice.approve.title", { id: fresh.notice_id }), body,
      [["cancel", t("common.cancel")], ["send", t("notice.approve.yes", { households }), "danger"]]);
    if (answer !== "send") return;
    let approved;
    try {
      approved = await post(`${base}/approve`);
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
      this.refresh();
      return;
    }
    if (approved.status === "planned") {
      toast(t("notice.approval.recorded", { id: approved.notice_id, count: approved.approvals.length, required: approved.approvals_required }));
    } else {
      toast(t("notice.approved", { id: approved.notice_id, deliveries }));
      if (approved.send_after) toast(t("notice.waits", { time: dateTime(approved.send_after) }));
      replace(this.previewEl);
      if (this.composerForm) this.composerForm.hidden = false;
    }
    this.tab = "notice";
    this.refresh();
  }

  /** A held or stale notice: what changed, households then and now, and planning it again. */
  async offerReplan(notice) {
    const base = `/api/incidents/${enc(this.selected)}`;
    let now = null;
    try {
      now = await post(`${base}/notices/preview`, notice.request);
    } catch (err) {
      toast(t("common.error", { message: err.message }), "error");
      return;
    }
    const before = (notice.counts || {}).households || 0;
    const after = now.counts.households || 0;
    const why = notice.status === "held"
      ? t("notice.held.why", { facts: list((notice.missing_facts || []).map((f) => label("fact", f))) })
      : t("notice.stale.why", { facts: list((notice.stale_facts || []).map((f) => label("fact", f))) });
    const missing = (now.missing_facts || []).length > 0;
    const body = h("div", {},
      h("p", { class: "warn", id: "replan-why" }, why),
      h("p", { class: "big-text", id: "replan-diff", dataset: { before: String(before), after: String(after) } },
        t("notice.replan.diff", { before: number(before), after: number(after) })),
      missing ? h("p", { class: "error", id: "replan-missing" }, t("notice.missing.area")) : null);
    const buttons = [["cancel", t("common.cancel")]];
    if (!missing) buttons.push(["replan", t("notice.replan.yes"), "primary"]);
    const answer = await ask(t("notice.replan.title", { id: notice.notice_id }), body, buttons);
    if (answer !== "replan") return;
    const planned = await this.act(() => post(`${base}/notices/${enc(notice.notice_id)}/replan`),
      t("notice.replanned", { old: notice.notice_id }));
    if (!planned) return;
    await this.refresh();
    await this.approve(planned.notice);
  }

  renderNotices() {
    if (!this.noticesEl) return;
    const notices = [...(this.notices || [])].reverse();
    if (!notices.length) {
      replace(this.noticesEl, h("p", { class: "muted" }, t("notice.none")));
      return;
    }
    replace(this.noticesEl, h("ul", { class: "items compact" }, notices.map((n) => h("li", { class: "item", dataset: { notice: n.notice_id, status: n.status, stale: String(Boolean(n.stale)) } },
      h("div", { class: "item-head" }, h("strong", {}, n.notice_id), " ", label("template", n.template), " ",
        h("span", { class: `badge notice-${n.status}` }, label("notice_status", n.status)),
        n.stale && n.status === "planned" ? [" ", h("span", { class: "badge sev-high notice-stale" }, t("notice.stale"))] : null),
      h("p", { class: "muted small" }, t("notice.audience.count", { households: number((n.counts || {}).households || 0), deliveries: number((n.counts || {}).deliveries || 0) }),
        " · ", t("notice.by", { name: (n.approvals || []).length ? list(n.approvals.map((a) => a.by)) : n.created_by }), " · ", dateTime(n.approved_at || n.created_at)),
      n.status === "held" ? h("p", { class: "warn small" }, t("notice.missing.area")) : null,
      n.superseded_by ? h("p", { class: "muted small" }, t("notice.superseded", { id: n.superseded_by })) : null,
      this.noticeActions(n)))));
  }

  renderDeliveries() {
    if (this.deliveriesEl) replace(this.deliveriesEl, deliveryBars(this.counts || {}));
  }

  // --- playbook ------------------------------------------------------------------------

  renderPlaybook() {
    const el = this.panels && this.panels.playbook;
    if (!el) return;
    const pb = this.playbook;
    if (!pb || !pb.playbook) {
      replace(el, h("p", { class: "muted" }, t("playbook.none")));
      return;
    }
    const steer = can("POST", `${ID}/stage`);
    replace(el,
      h("h3", {}, pb.title || pb.playbook),
      h("p", {}, h("strong", {}, `${t("playbook.etr")}: `), h("span", { id: "etr" }, pb.etr ? dateTime(pb.etr) : t("playbook.etr.none")),
        pb.advisory ? [" · ", h("strong", {}, `${t("playbook.advisory")}: `), label("advisory", pb.advisory)] : null),
      this.etrControl(),
      h("h4", {}, t("playbook.slas")), slaList(pb.slas) || h("p", { class: "muted" }, t("common.none")),
      h("h4", {}, t("playbook.stages")),
      h("ol", { class: "stages" }, pb.stages.map((s) => h("li", { class: s.current ? "current" : "", dataset: { stage: s.id }, "aria-current": s.current ? "step" : false },
        h("span", {}, s.title, s.current ? h("span", { class: "badge" }, t("playbook.current")) : null),
        steer && !s.current ? h("button", { type: "button", class: "small", onclick: () => this.enterStage(s) }, t("playbook.enter")) : null))),
      pb.timers.length ? [h("h4", {}, t("playbook.timers")),
        h("ul", { class: "plain small" }, pb.timers.map((tm) => h("li", {}, `${tm.timer} · ${dateTime(tm.due_at)}`)))] : null);
    tickSlas(el);
  }

  /** Shown only when the service has an ETR endpoint (POST /api/incidents/{id}/etr {etr, reason?}). */
  etrControl() {
    if (!can("POST", `${ID}/etr`)) return null;
    const input = h("input", { type: "datetime-local", id: "etr-input" });
    return h("div", { class: "row" }, field(t("playbook.etr.set"), input),
      h("button", { type: "button", onclick: () => input.value && this.act(() => post(`/api/incidents/${enc(this.selected)}/etr`, { etr: new Date(input.value).toISOString() }), t("common.done")) }, t("playbook.etr.set")));
  }

  async enterStage(stage) {
    const reason = h("input", { type: "text", maxlength: "1000" });
    const answer = await ask(t("playbook.enter.title", { id: this.selected, stage: stage.title }),
      h("div", { class: "form" }, h("p", {}, t("playbook.enter.body")), field(t("common.reason"), reason)),
      [["cancel", t("common.cancel")], ["go", t("playbook.enter").replace("…", ""), "primary"]]);
    if (answer !== "go") return;
    const body = { stage: stage.id, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) };
    await this.act(() => post(`/api/incidents/${enc(this.selected)}/stage`, body), t("playbook.moved", { stage: stage.title }));
    this.refresh();
  }

  // --- log: status, notes, hand-over ---------------------------------------------------

  buildLogPanel() {
    this.statusEl = h("div", { class: "status-buttons" });
    this.recentEl = h("div", { class: "recent" });
    const steer = can("POST", `${ID}/notes`);
    const note = h("textarea", { id: "note-text", rows: "3", maxlength: "4000" });
    const to = h("input", { type: "text", id: "handover-to", autocomplete: "off", maxlength: "100" });
    const why = h("input", { type: "text", id: "handover-reason", maxlength: "1000" });
    return h("div", { class: "panel-body" },
      steer ? [
        h("h3", {}, t("log.status")), this.statusEl,
        h("form", { class: "form", onsubmit: async (ev) => {
          ev.preventDefault();
          if (!note.value.trim()) return;
          const ok = await this.act(() => post(`/api/incidents/${enc(this.selected)}/notes`, { text: note.value.trim() }), t("log.note.added"));
          if (ok) note.value = "";
        } }, field(t("log.note"), note), h("button", { type: "submit" }, t("log.note.add"))),
        h("form", { class: "form", onsubmit: async (ev) => {
          ev.preventDefault();
          const name = to.value.trim();
          if (!name) return;
          const ok = await this.act(() => post(`/api/incidents/${enc(this.selected)}/handover`, { to: name, ...(why.value.trim() ? { reason: why.value.trim() } : {}) }),
            t("log.handover.done", { name }));
          if (ok) to.value = why.value = "";
        } }, h("h3", {}, t("log.handover")), field(t("log.handover.to"), to), field(t("common.reason"), why), h("button", { type: "submit" }, t("log.handover.submit"))),
      ] : null,
      h("h3", {}, t("log.recent")), this.recentEl);
  }

  renderLog() {
    if (!this.statusEl) return;
    const inc = this.incident;
    replace(this.statusEl, (TRANSITIONS[inc.status] || []).map((to) => h("button", {
      type: "button", class: to === "cancelled" ? "small danger" : "small", dataset: { status: to },
      onclick: async () => {
        const reason = h("input", { type: "text", maxlength: "1000" });
        const answer = await ask(`${label("status", inc.status)} → ${label("status", to)}`, h("div", { class: "form" }, field(t("common.reason"), reason)),
          [["cancel", t("common.cancel")], ["go", label("status", to), "primary"]]);
        if (answer !== "go") return;
        await this.act(() => post(`/api/incidents/${enc(this.selected)}/status`, { status: to, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) }),
          t("log.status.done", { status: label("status", to) }));
      },
    }, label("status", to))));
    const recent = [...(this.events || [])].slice(-25).reverse();
    replace(this.recentEl, h("ol", { class: "events" }, recent.map((e) => h("li", {},
      h("span", { class: "muted small" }, `#${e.seq} · ${dateTime(e.at)} · ${e.actor}`), h("br"),
      h("strong", {}, label("event", e.type)), " ", describeEvent(e)))));
  }
}
