// The map: inline SVG of the incident areas over a light grid, in a simple lon/lat projection
// (longitude shrunk by the cosine of the latitude). No tiles, nothing fetched from elsewhere.

const NS = "http://www.w3.org/2000/svg";
const SIZE = 1000;
const M_PER_DEG = 111320;

function el(name, attrs = {}) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

function box(geometries) {
  let west = Infinity, south = Infinity, east = -Infinity, north = -Infinity;
  for (const g of geometries) {
    for (const ring of rings(g)) {
      for (const [lon, lat] of ring) {
        west = Math.min(west, lon); east = Math.max(east, lon);
        south = Math.min(south, lat); north = Math.max(north, lat);
      }
    }
  }
  return Number.isFinite(west) ? { west, south, east, north } : null;
}

function niceStep(span) {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
}

export class AreaMap {
  /** `onPick(lon, lat)` runs when a point of the map is tapped or clicked. */
  constructor(svg, onPick) {
    this.svg = svg;
    this.onPick = onPick;
    this.layer = el("g");
    this.pointLayer = el("g");
    svg.append(this.layer, this.pointLayer);
    this.frame = { west: -1, south: -1, east: 1, north: 1 };
    this.kx = 1;
    svg.addEventListener("click", (event) => {
      const [lon, lat] = this.fromScreen(event.clientX, event.clientY);
      if (Number.isFinite(lon) && Number.isFinite(lat)) this.onPick(lon, lat);
    });
  }

  /** The frame: the areas with room around them (at least ~1 km), else the service area. */
  setFrame(bounds, incidents) {
    const areas = box(incidents.map((i) => i.area).filter(Boolean));
    let frame = areas;
    if (frame) {
      const mid = (frame.south + frame.north) / 2;
      const kx = Math.max(Math.cos((mid * Math.PI) / 180), 0.01);
      const padLat = Math.max((frame.north - frame.south) * 0.5, 1000 / M_PER_DEG);
      const padLon = Math.max((frame.east - frame.west) * 0.5, 1000 / (M_PER_DEG * kx));
      frame = { west: frame.west - padLon, east: frame.east + padLon, south: frame.south - padLat, north: frame.north + padLat };
    } else if (bounds) {
      frame = { west: bounds[0], south: bounds[1], east: bounds[2], north: bounds[3] };
    } else {
      frame = { west: -180, south: -85, east: 180, north: 85 };
    }
    // Square it (the SVG is square), in projected units.
    const mid = (frame.south + frame.north) / 2;
    this.kx = Math.max(Math.cos((mid * Math.PI) / 180), 0.01);
    const width = (frame.east - frame.west) * this.kx;
    const height = frame.north - frame.south;
    const side = Math.max(width, height);
    const cx = (frame.west + frame.east) / 2;
    const cy = mid;
    this.frame = {
      west: cx - side / (2 * this.kx), east: cx + side / (2 * this.kx),
      south: cy - side / 2, north: cy + side / 2,
    };
    this.scale = SIZE / side;
    this.bounds = bounds;
  }

  project(lon, lat) {
    return [(lon - this.frame.west) * this.kx * this.scale, (this.frame.north - lat) * this.scale];
  }

  unproject(x, y) {
    return [this.frame.west + x / (this.kx * this.scale), this.frame.north - y / this.scale];
  }

  fromScreen(clientX, clientY) {
    const matrix = this.svg.getScreenCTM();
    if (!matrix) return [NaN, NaN];
    const p = new DOMPoint(clientX, clientY).matrixTransform(matrix.inverse());
    return this.unproject(p.x, p.y);
  }

  /** Where a lon/lat is on the page (for tests and keyboard-free checks). */
  toScreen(lon, lat) {
    const [x, y] = this.project(lon, lat);
    const p = new DOMPoint(x, y).matrixTransform(this.svg.getScreenCTM());
    return [p.x, p.y];
  }

  path(geometry) {
    return rings(geometry)
      .map((ring) => ring.map(([lon, lat], n) => {
        const [x, y] = this.project(lon, lat);
        return `${n ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
      }).join("") + "Z")
      .join("");
  }

  /** Draw the areas; `label(incident)` names each for screen readers. */
  draw(bounds, incidents, label) {
    this.setFrame(bounds, incidents);
    this.layer.replaceChildren();
    if (this.bounds) {
      const [x0, y0] = this.project(this.bounds[0], this.bounds[3]);
      const [x1, y1] = this.project(this.bounds[2], this.bounds[1]);
      this.layer.append(el("rect", { class: "service", x: x0, y: y0, width: x1 - x0, height: y1 - y0 }));
    }
    const step = niceStep(this.frame.north - this.frame.south);
    const grid = el("g", { class: "grid", "aria-hidden": "true" });
    for (let lat = Math.ceil(this.frame.south / step) * step; lat <= this.frame.north; lat += step) {
      const [, y] = this.project(this.frame.west, lat);
      grid.append(el("line", { x1: 0, y1: y, x2: SIZE, y2: y }));
    }
    const lonStep = step / this.kx;
    const lonNice = niceStep(lonStep * 6);
    for (let lon = Math.ceil(this.frame.west / lonNice) * lonNice; lon <= this.frame.east; lon += lonNice) {
      const [x] = this.project(lon, this.frame.north);
      grid.append(el("line", { x1: x, y1: 0, x2: x, y2: SIZE }));
    }
    this.layer.append(grid);
    for (const incident of incidents) {
      if (!incident.area) continue;
      const area = el("path", { class: "area", d: this.path(incident.area), "fill-rule": "evenodd", "data-id": incident.id });
      const title = el("title");
      title.textContent = label(incident);
      area.append(title);
      this.layer.append(area);
    }
  }

  select(id) {
    for (const area of this.layer.querySelectorAll(".area")) {
      area.classList.toggle("selected", area.dataset.id === id);
    }
  }

  setPoint(lon, lat) {
    this.pointLayer.replaceChildren();
    if (lon == null) return;
    const [x, y] = this.project(lon, lat);
    this.pointLayer.append(el("circle", { class: "point", cx: x, cy: y, r: 12 }));
  }
}
