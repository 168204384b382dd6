// The map: no tiles needed. The service area's zones and pipes are the base map (an optional
// tile layer comes from [console] tile_url). Leaflet is loaded as a classic script (window.L).

import { get } from "./api.js";
import { leafletText } from "./dom.js";
import { t } from "./i18n.js";

const L = window.L;
let baseData = null;

/** Zones and pipes, fetched once per page. */
export function loadBase() {
  if (!baseData) {
    baseData = Promise.all([get("/api/layers"), get("/api/network")]).then(([zones, pipes]) => ({ zones, pipes }));
    baseData.catch(() => {
      baseData = null;
    });
  }
  return baseData;
}

export const SEVERITY_COLOURS = { low: "#7ccf8a", medium: "#f2c94c", high: "#ff9f43", critical: "#ff5c5c" };
const ZONE_STYLES = [
  { color: "#8fb8de", weight: 2, dashArray: "6 4", fillColor: "#8fb8de", fillOpacity: 0.04 },
  { color: "#c9a0ff", weight: 1, dashArray: "2 4", fillColor: "#c9a0ff", fillOpacity: 0.03 },
];
const PIPE_STYLE = { pipe: "#4d7ea8", pump: "#ffb454", valve: "#ffe08a" };

function tileMeta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  const value = el ? el.content : "";
  return value.startsWith("__") ? "" : value;
}

/**
 * A map in `el`. Returns {map, zoneLayers: Map(layerName -> L.GeoJSON), zoneById, pipes,
 * pipeById, overlay (for the caller's layers), fit(), onZoneClick, onPipeClick}.
 */
export async function createMap(el, { keyboard = true } = {}) {
  const map = L.map(el, {
    zoomSnap: 0.25,
    keyboard,
    attributionControl: Boolean(tileMeta("incident-tile-url")),
    preferCanvas: false,
    maxZoom: 20,
  });
  el.setAttribute("aria-label", t("map.label"));
  el.setAttribute("role", "application");
  const tileUrl = tileMeta("incident-tile-url");
  if (tileUrl) L.tileLayer(tileUrl, { attribution: tileMeta("incident-tile-attribution"), maxZoom: 20 }).addTo(map);
  map.setView([0, 0], 2);
  // A view unmounted (language switch, another route) during a zoom animation: Leaflet's
  // end-of-zoom timer still fires and reads the removed panes. Nothing to finish then.
  const zoomEnd = map._onZoomTransitionEnd;
  map._onZoomTransitionEnd = function onZoomEnd(...args) {
    if (this._mapPane) zoomEnd.apply(this, args);
  };
  // The map's box changes without a window resize (a toast strip, the board's rows): follow it.
  if (window.ResizeObserver) {
    let gone = false;
    const resized = new ResizeObserver(() => {
      if (!gone && el.isConnected && el.clientHeight > 0) map.invalidateSize({ pan: false, animate: false });
    });
    resized.observe(el);
    map.on("unload", () => {
      gone = true;
      resized.disconnect();
    });
  }

  const handle = {
    map,
    zoneLayers: new Map(),
    zoneById: new Map(),
    pipeById: new Map(),
    pipes: null,
    onZoneClick: null,
    onPipeClick: null,
    bounds: null,
    fit() {
      if (handle.bounds && handle.bounds.isValid()) map.fitBounds(handle.bounds, { padding: [12, 12] });
    },
  };

  const { zones, pipes } = await loadBase();
  const renderer = L.canvas({ tolerance: 6 });
  const layerNames = [...new Set(zones.features.map((f) => f.properties.layer))];
  layerNames.forEach((name, i) => {
    const layer = L.geoJSON(
      { type: "FeatureCollection", features: zones.features.filter((f) => f.properties.layer === name) },
      {
        style: () => ZONE_STYLES[i % ZONE_STYLES.length],
        renderer,
        onEachFeature: (feature, lyr) => {
          handle.zoneById.set(feature.properties.id, lyr);
          lyr.bindTooltip(leafletText(`${feature.properties.id} · ${feature.properties.name || ""}`), { sticky: true });
          lyr.on("click", (ev) => handle.onZoneClick && handle.onZoneClick(feature.properties, ev));
        },
      },
    );
    layer.addTo(map);
    handle.zoneLayers.set(name, layer);
  });
  handle.pipes = L.geoJSON(pipes, {
    renderer,
    style: (f) => ({ color: PIPE_STYLE[f.properties.kind] || PIPE_STYLE.pipe, weight: f.properties.kind === "pipe" ? 1.6 : 3, opacity: 0.9 }),
    onEachFeature: (feature, lyr) => {
      handle.pipeById.set(feature.properties.id, lyr);
      lyr.on("click", (ev) => {
        if (handle.onPipeClick) {
          L.DomEvent.stopPropagation(ev);
          handle.onPipeClick(feature.properties, ev);
        }
      });
    },
  }).addTo(map);
  const all = L.featureGroup([...handle.zoneLayers.values(), handle.pipes]);
  handle.bounds = all.getBounds();
  handle.fit();
  return handle;
}

/** A zone layer's title in the UI language ("dmas" -> "District metered areas"), never its raw id. */
export function layerTitle(name) {
  if (/dma/i.test(name)) return t("map.zones.dma");
  if (/pressure|pz/i.test(name)) return t("map.zones.pz");
  return String(name).replaceAll("_", " ");
}

/** Switches for the base layers (keyboard-usable checkboxes, not Leaflet's hover control). */
export function layerSwitches(handle, h) {
  const names = [...handle.zoneLayers.keys()];
  const box = h("fieldset", { class: "layer-switches" }, h("legend", {}, t("map.layers")));
  const add = (text, layer) => {
    const input = h("input", { type: "checkbox", checked: true, onchange: () => (input.checked ? layer.addTo(handle.map) : layer.remove()) });
    box.append(h("label", {}, input, " ", text));
  };
  names.forEach((name) => add(layerTitle(name), handle.zoneLayers.get(name)));
  add(t("map.pipes"), handle.pipes);
  box.append(h("button", { type: "button", class: "small", onclick: () => handle.fit() }, t("map.fit")));
  return box;
}

/** An incident's area GeoJSON (GET .../area) drawn as one layer: polygon, dry pipes, valves to close. */
export function areaLayer(collection, severity = "high") {
  const colour = SEVERITY_COLOURS[severity] || SEVERITY_COLOURS.high;
  return L.geoJSON(collection, {
    style: (f) => {
      const role = f.properties && f.properties.role;
      if (role === "affected_pipe") return { color: "#ff6b6b", weight: 4, opacity: 1 };
      if (role === "valve_to_close") return { radius: 7, color: "#111", weight: 2, fillColor: "#ffe08a", fillOpacity: 1 };
      return { color: colour, weight: 3, fillColor: colour, fillOpacity: 0.18 };
    },
    pointToLayer: (f, latlng) =>
      L.circleMarker(latlng, { radius: 7, color: "#111", weight: 2, fillColor: "#ffe08a", fillOpacity: 1 }).bindTooltip(leafletText(f.properties.id), { permanent: false }),
  });
}

/**
 * Drawing a polygon: clicks add corners; Enter or double-click finishes; Escape cancels;
 * Backspace removes the last corner. With the keyboard: arrows pan, Space adds a corner at
 * the cross in the middle of the map.
 */
export class PolygonDraw {
  constructor(handle, { onChange, onDone, onCancel }) {
    this.handle = handle;
    this.map = handle.map;
    this.points = [];
    this.onChange = onChange;
    this.onDone = onDone;
    this.onCancel = onCancel;
    this.layer = L.layerGroup().addTo(this.map);
    this.line = L.polyline([], { color: "#5cc8ff", weight: 3, dashArray: "6 4" }).addTo(this.layer);
    this.rubber = L.polyline([], { color: "#5cc8ff", weight: 1, opacity: 0.7 }).addTo(this.layer);
    this.onClick = (ev) => this.add(ev.latlng);
    this.onDbl = (ev) => {
      L.DomEvent.stop(ev);
      this.finish();
    };
    this.onMove = (ev) => {
      if (this.points.length) this.rubber.setLatLngs([this.points[this.points.length - 1], ev.latlng, this.points[0]]);
    };
    this.onKey = (ev) => {
      const target = ev.target;
      if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
      if (ev.key === "Escape") {
        ev.preventDefault();
        this.cancel();
      } else if (ev.key === "Enter" && (target === this.map.getContainer() || !target.closest || !target.closest("button,a"))) {
        ev.preventDefault();
        this.finish();
      } else if (ev.key === "Backspace") {
        ev.preventDefault();
        this.undo();
      } else if ((ev.key === " " || ev.key === "+") && target === this.map.getContainer()) {
        ev.preventDefault();
        ev.stopPropagation();
        this.add(this.map.getCenter());
      }
    };
  }

  start() {
    this.map.doubleClickZoom.disable();
    this.map.on("click", this.onClick);
    this.map.on("dblclick", this.onDbl);
    this.map.on("mousemove", this.onMove);
    this.map.getContainer().classList.add("drawing");
    document.addEventListener("keydown", this.onKey, true);
    this.changed();
  }

  stop() {
    this.map.off("click", this.onClick);
    this.map.off("dblclick", this.onDbl);
    this.map.off("mousemove", this.onMove);
    this.map.getContainer().classList.remove("drawing");
    document.removeEventListener("keydown", this.onKey, true);
    setTimeout(() => this.map.doubleClickZoom.enable(), 0);
    this.layer.remove();
  }

  add(latlng) {
    const last = this.points[this.points.length - 1];
    // The two clicks of a double-click land on one spot: one corner, not two.
    if (last && this.map.latLngToContainerPoint(last).distanceTo(this.map.latLngToContainerPoint(latlng)) < 4) return;
    this.points.push(latlng);
    L.circleMarker(latlng, { radius: 4, color: "#5cc8ff", fillColor: "#0f1720", fillOpacity: 1, weight: 2 }).addTo(this.layer);
    this.changed();
  }

  undo() {
    if (!this.points.length) return;
    this.points.pop();
    const markers = this.layer.getLayers().filter((l) => l instanceof L.CircleMarker);
    if (markers.length) this.layer.removeLayer(markers[markers.length - 1]);
    this.changed();
  }

  changed() {
    this.line.setLatLngs(this.points);
    if (this.points.length < 1) this.rubber.setLatLngs([]);
    if (this.onChange) this.onChange(this.points.length);
  }

  finish() {
    if (this.points.length < 3) {
      if (this.onChange) this.onChange(this.points.length, t("area.draw.few"));
      return;
    }
    const ring = this.points.map((p) => [round(p.lng), round(p.lat)]);
    ring.push(ring[0]);
    this.stop();
    this.onDone({ type: "Polygon", coordinates: [ring] });
  }

  cancel() {
    this.stop();
    this.onCancel();
  }
}

function round(x) {
  return Math.round(x * 1e6) / 1e6;
}
