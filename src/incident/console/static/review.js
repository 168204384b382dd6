// The reviewer's view: an incident's timeline with filters, its integrity check, and exports
// (CSV, CAP 1.2, the after-action report), downloaded with the token and saved as files.

import { can, download, enc, getAll, saveJson } from "./api.js";
import { append, h, replace, toast } from "./dom.js";
import { dateTime, dateTimeSeconds, describeEvent, label, t } from "./i18n.js";
import { drillBadge, severityBadge, statusBadge } from "./widgets.js";

// The incident list kept in memory (as many as one listing brings).
const MAX_INCIDENTS = 1000;

export function mount(main, ctx, arg) {
  const view = new Review(main, ctx);
  view.init(arg);
  return view;
}

class Review {
  constructor(main, ctx) {
    this.main = main;
    this.ctx = ctx;
    this.status = "all";
    this.search = "";
    this.incidents = [];
    this.selected = null;
    this.timeline = null;
    this.filters = { type: "", actor: "", text: "" };
    this.onLive = (ev) => {
      const msg = ev.detail;
      if (msg.type !== "event") return;
      const i = this.incidents.findIndex((x) => x.id === msg.incident.id);
      if (i >= 0) this.incidents[i] = msg.incident;
      else {
        this.incidents.unshift(msg.incident);
        if (this.incidents.length > MAX_INCIDENTS) this.incidents.length = MAX_INCIDENTS;
      }
      this.renderList();
      if (msg.incident.id === this.selected) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.loadTimeline(this.selected), 300);
      }
    };
  }

  async init(arg) {
    this.listEl = h("ul", { class: "items", id: "review-incidents" });
    this.detailEl = h("div", { class: "review-main" });
    const statusSelect = h("select", { id: "review-status", onchange: () => {
      this.status = statusSelect.value;
      this.loadList();
    } }, ["all", "open", "closed"].map((s) => h("option", { value: s, selected: s === this.status }, label("status", s))));
    const searchBox = h("input", { type: "search", id: "review-search", oninput: () => {
      this.search = searchBox.value.trim().toLowerCase();
      this.renderList();
    } });
    append(this.main, h("div", { class: "review" },
      h("aside", { class: "side" },
        h("h1", {}, t("review.title")),
        h("div", { class: "row" },
          h("label", { for: "review-status" }, t("review.filter.status")), statusSelect),
        h("label", { for: "review-search", class: "sr-only" }, t("review.search")),
        searchBox,
        h("div", { class: "side-list" }, this.listEl)),
      this.detailEl));
    searchBox.placeholder = t("review.search");
    this.main.classList.add("view-review");
    this.ctx.live.addEventListener("message", this.onLive);
    await this.loadList();
    if (!this.unmounted) this.setArg(arg);
  }

  unmount() {
    this.unmounted = true;
    this.ctx.live.removeEventListener("message", this.onLive);
    clearTimeout(this.timer);
    this.main.classList.remove("view-review");
  }

  async loadList() {
    const { incidents } = await getAll(`/api/incidents?status=${this.status}&limit=1000`, "incidents");
    this.incidents = incidents;
    this.renderList();
  }

  renderList() {
    const q = this.search;
    const shown = this.incidents.filter((i) => !q || `${i.id} ${i.title}`.toLowerCase().includes(q));
    replace(this.listEl, shown.map((inc) => h("li", {},
      h("a", { class: `item link sev-${inc.severity}`, href: `#/review/${enc(inc.id)}`, "aria-current": inc.id === this.selected ? "true" : false, dataset: { incident: inc.id } },
        h("div", { class: "item-head" }, statusBadge(inc.status), drillBadge(inc), h("strong", {}, inc.title)),
        h("p", { class: "muted small" }, `${inc.id} · ${dateTime(inc.declared_at)}`)))));
  }

  setArg(id) {
    this.selected = id;
    this.filters = { type: "", actor: "", text: "" };
    this.renderList();
    if (!id) {
      replace(this.detailEl, h("p", { class: "muted empty" }, t("review.select")));
      return;
    }
    this.loadTimeline(id);
  }

  async loadTimeline(id) {
    try {
      const timeline = await getAll(`/api/incidents/${enc(id)}/timeline`, "events");
      if (this.selected !== id || this.unmounted) return;
      this.timeline = timeline;
      this.render();
    } catch (err) {
      replace(this.detailEl, h("p", { class: "error", role: "alert" }, t("common.error", { message: err.message })));
    }
  }

  exportButton(text, path, name, id) {
    return h("button", { type: "button", id, onclick: async (ev) => {
      const button = ev.currentTarget;
      button.disabled = true;
      try {
        // The JSON timeline is paged: save the whole one this view read, not a first page.
        const file = typeof path === "function" ? path() : await download(path, name);
        toast(t("review.downloaded", { file }));
      } catch (err) {
        toast(t("common.error", { message: err.message }), "error");
      } finally {
        button.disabled = false;
      }
    } }, text);
  }

  render() {
    const { incident: inc, events, integrity } = this.timeline;
    const base = `/api/incidents/${enc(inc.id)}`;
    const types = [...new Set(events.map((e) => e.type))].sort();
    const actors = [...new Set(events.map((e) => e.actor))].sort();
    const typeSelect = h("select", { id: "filter-type" }, h("option", { value: "" }, t("common.all")),
      types.map((ty) => h("option", { value: ty, selected: ty === this.filters.type }, label("event", ty))));
    const actorSelect = h("select", { id: "filter-actor" }, h("option", { value: "" }, t("common.all")),
      actors.map((a) => h("option", { value: a, selected: a === this.filters.actor }, a)));
    const textInput = h("input", { type: "search", id: "filter-text", value: this.filters.text });
    const tbody = h("tbody");
    const count = h("p", { class: "muted small", id: "events-shown", "aria-live": "polite" });
    const apply = () => {
      this.filters = { type: typeSelect.value, actor: actorSelect.value, text: textInput.value.trim().toLowerCase() };
      const rows = events.filter((e) => (!this.filters.type || e.type === this.filters.type) && (!this.filters.actor || e.actor === this.filters.actor));
      const described = rows.map((e) => [e, describeEvent(e)]).filter(([, d]) => !this.filters.text || d.toLowerCase().includes(this.filters.text));
      replace(tbody, described.map(([e, d]) => h("tr", { dataset: { type: e.type, seq: String(e.seq) } },
        h("td", { class: "num" }, String(e.seq)), h("td", { class: "nowrap" }, dateTimeSeconds(e.at)),
        h("td", {}, label("event", e.type)), h("td", {}, e.actor), h("td", { class: "what" }, d))));
      count.textContent = t("review.shown", { shown: described.length, total: events.length });
    };
    for (const el of [typeSelect, actorSelect]) el.addEventListener("change", apply);
    textInput.addEventListener("input", apply);
    const ok = integrity.ok;
    replace(this.detailEl,
      h("header", { class: "detail-head" },
        h("h2", {}, drillBadge(inc), inc.title),
        h("p", { class: "muted" }, `${inc.id} · ${label("kind", inc.kind)} · ${label("utility", inc.utility)} · `, statusBadge(inc.status), " ", severityBadge(inc.severity))),
      h("div", { class: `integrity ${ok ? "ok" : "bad"}`, id: "integrity", role: "status", dataset: { ok: String(ok) } },
        ok ? t("review.integrity.ok", { events: integrity.events, seq: integrity.head_seq })
          : [h("strong", {}, t("review.integrity.bad")), h("ul", {}, integrity.problems.map((p) => h("li", {}, p)))]),
      h("div", { class: "exports", role: "group", "aria-label": t("review.export") },
        h("span", { class: "muted" }, `${t("review.export")}:`),
        this.exportButton(t("review.export.csv"), `${base}/timeline?format=csv`, `${inc.id}-timeline.csv`, "export-csv"),
        this.exportButton(t("review.export.cap"), `${base}/timeline?format=cap`, `${inc.id}-cap.xml`, "export-cap"),
        can("GET", "/api/incidents/{incident_id}/report") ? this.exportButton(t("review.export.report"), `${base}/report`, `${inc.id}-report.html`, "export-report") : null,
        this.exportButton(t("review.export.json"), () => saveJson(this.timeline, `${inc.id}-timeline.json`), `${inc.id}-timeline.json`, "export-json")),
      h("div", { class: "filters row" },
        h("div", { class: "field" }, h("label", { for: "filter-type" }, t("review.filter.type")), typeSelect),
        h("div", { class: "field" }, h("label", { for: "filter-actor" }, t("review.filter.actor")), actorSelect),
        h("div", { class: "field" }, h("label", { for: "filter-text" }, t("review.filter.text")), textInput)),
      count,
      h("div", { class: "table-wrap" }, h("table", { class: "timeline" },
        h("thead", {}, h("tr", {}, ["seq", "time", "type", "actor", "what"].map((c) => h("th", { scope: "col" }, t(`review.col.${c}`))))),
        tbody)));
    apply();
  }
}
