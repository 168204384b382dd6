"""A packed grid over points: "which points does this polygon cover?" without a scan (pure).

The points' extent is cut into about ``n / per_cell`` cells; the point positions are kept
sorted by cell (one ``int32`` array) with each cell's start in that array, so the index is
two flat arrays and no geometry objects. A query:

1. finds the *boundary cells*: the polygon's outline is densified to steps shorter than a
   cell, so every step stays within the cells of its two ends (plus both corner cells when
   it moves diagonally); these cells are a superset of the cells the outline touches;
2. classifies every other cell in the polygon's bounding box without looking at its points:
   along each grid row a run of cells the outline does not touch is wholly inside or
   wholly outside, so one point-in-polygon test of one cell centre per run decides it;
3. takes the points of inside cells as they are, and tests only the points of boundary
   cells (and the few points beyond the grid's extent) with a prepared-geometry
   ``shapely.intersects_xy``.

Points on the outline count as inside, as with ``intersects_xy`` over every point; the
result equals that full scan exactly (a test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

IntArray = NDArray[np.int64]
F64 = NDArray[np.float64]
_EPS = 1e-9  # in cell units: a vertex this close to a grid line marks the cells on both sides
_MAX_SIDE = 4096


@dataclass(frozen=True, eq=False)
class PointGrid:
    x: F64 = field(repr=False)
    y: F64 = field(repr=False)
    x0: float
    y0: float
    dx: float
    dy: float
    cols: int
    rows: int
    #: Positions of the points inside the grid, sorted by cell (row-major).
    order: NDArray[np.int32]
    #: ``order[start[c]:start[c + 1]]`` are the points of cell ``c``.
    start: NDArray[np.int64]
    #: Positions of points beyond the grid's extent (far-off outliers), tested one by one.
    stray: IntArray

    @classmethod
    def build(cls, x: F64, y: F64, per_cell: float = 4.0) -> PointGrid:
        n = len(x)
        if n == 0:
            return cls(x, y, 0.0, 0.0, 1.0, 1.0, 1, 1, np.empty(0, np.int32), np.zeros(2, np.int64),
                       np.empty(0, np.int64))  # fmt: skip
        # The extent of the bulk of the points: one far-off typo must not stretch every cell.
        lo_x, hi_x = np.quantile(x, [0.0005, 0.9995]).tolist() if n > 2000 else (x.min(), x.max())
        lo_y, hi_y = np.quantile(y, [0.0005, 0.9995]).tolist() if n > 2000 else (y.min(), y.max())
        width, height = max(hi_x - lo_x, 1e-6), max(hi_y - lo_y, 1e-6)
        x0, y0 = lo_x - width * 0.01, lo_y - height * 0.01
        width, height = width * 1.02, height * 1.02
        cells = max(n / per_cell, 1.0)
        cols = min(max(math.ceil(math.sqrt(cells * width / height)), 1), _MAX_SIDE)
        rows = min(max(math.ceil(cells / cols), 1), _MAX_SIDE)
        dx, dy = width / cols, height / rows
        ix = np.floor((x - x0) / dx)
        iy = np.floor((y - y0) / dy)
        inside = (ix >= 0) & (ix < cols) & (iy >= 0) & (iy < rows)
        cell = (iy * cols + ix).astype(np.int64)
        cell[~inside] = cols * rows  # a last, virtual cell for the strays
        order = np.argsort(cell, kind="stable").astype(np.int32)
        start = np.zeros(cols * rows + 2, np.int64)
        np.cumsum(np.bincount(cell, minlength=cols * rows + 1), out=start[1:])
        stray = order[start[cols * rows] :].astype(np.int64)
        return cls(x, y, x0, y0, dx, dy, cols, rows, order[: start[cols * rows]], start[:-1], stray)

    def query(self, geometry: BaseGeometry) -> IntArray:
        """Sorted positions of the points that ``geometry`` covers (outline included)."""
        shapely.prepare(geometry)  # a cache on the geometry, invisible to its value
        found = [self._stray_hits(geometry)]
        bx0, by0, bx1, by1 = shapely.bounds(geometry).tolist()
        c0, c1 = (
            max(math.floor((bx0 - self.x0) / self.dx), 0),
            min(math.floor((bx1 - self.x0) / self.dx), self.cols - 1),
        )
        r0, r1 = (
            max(math.floor((by0 - self.y0) / self.dy), 0),
            min(math.floor((by1 - self.y0) / self.dy), self.rows - 1),
        )
        if len(self.order) and c0 <= c1 and r0 <= r1:
            found.extend(self._grid_hits(geometry, c0, c1, r0, r1))
        out = np.concatenate(found)
        out.sort()
        return out.astype(np.int64)

    def _stray_hits(self, geometry: BaseGeometry) -> IntArray:
        if not len(self.stray):
            return self.stray
        hit = shapely.intersects_xy(geometry, self.x[self.stray], self.y[self.stray])
        return self.stray[hit]

    def _boundary_cells(
        self, geometry: BaseGeometry, c0: int, r0: int, cols: int, rows: int
    ) -> NDArray[np.bool_]:
        step = min(self.dx, self.dy) * 0.99
        outline = shapely.get_coordinates(shapely.segmentize(shapely.boundary(geometry), step))
        fx = (outline[:, 0] - self.x0) / self.dx - c0
        fy = (outline[:, 1] - self.y0) / self.dy - r0
        marks = np.zeros((rows + 2, cols + 2), np.bool_)  # a ring of spare cells around

        def mark(i: NDArray[np.float64], j: NDArray[np.float64]) -> None:
            ii = np.clip(i, -1, cols).astype(np.int64) + 1
            jj = np.clip(j, -1, rows).astype(np.int64) + 1
            marks[jj, ii] = True

        lo_i, hi_i = np.floor(fx - _EPS), np.floor(fx + _EPS)
        lo_j, hi_j = np.floor(fy - _EPS), np.floor(fy + _EPS)
        for i in (lo_i, hi_i):
            for j in (lo_j, hi_j):
                mark(i, j)
        # A diagonal step crosses one of the two corner cells as well: mark both.
        ci, cj = np.floor(fx), np.floor(fy)
        diagonal = (ci[1:] != ci[:-1]) & (cj[1:] != cj[:-1])
        mark(ci[1:][diagonal], cj[:-1][diagonal])
        mark(ci[:-1][diagonal], cj[1:][diagonal])
        return marks[1:-1, 1:-1]

    def _grid_hits(self, geometry: BaseGeometry, c0: int, c1: int, r0: int, r1: int) -> list[IntArray]:
        cols, rows = c1 - c0 + 1, r1 - r0 + 1
        boundary = self._boundary_cells(geometry, c0, r0, cols, rows)
        free = ~boundary
        run_start = free.copy()
        run_start[:, 1:] &= boundary[:, :-1]
        sr, sc = np.nonzero(run_start)
        centre_x = self.x0 + (c0 + sc + 0.5) * self.dx
        centre_y = self.y0 + (r0 + sr + 0.5) * self.dy
        run_inside = shapely.contains_xy(geometry, centre_x, centre_y)
        run_of = np.cumsum(run_start.ravel()) - 1
        inside = np.zeros(rows * cols, np.bool_)
        flat_free = free.ravel()
        inside[flat_free] = run_inside[run_of[flat_free]]
        cell = ((np.arange(r0, r1 + 1) * self.cols)[:, None] + np.arange(c0, c1 + 1)[None, :]).ravel()
        whole = self.order[_ranges(self.start[cell[inside]], self.start[cell[inside] + 1])]
        edge = self.order[_ranges(self.start[cell[boundary.ravel()]], self.start[cell[boundary.ravel()] + 1])]
        hit = shapely.intersects_xy(geometry, self.x[edge], self.y[edge])
        return [whole.astype(np.int64), edge[hit].astype(np.int64)]


def _ranges(begin: IntArray, end: IntArray) -> IntArray:
    """The concatenation of ``arange(b, e)`` for each pair, without a Python loop."""
    length = end - begin
    keep = length > 0
    begin, length = begin[keep], length[keep]
    total = int(length.sum())
    if total == 0:
        return np.empty(0, np.int64)
    shift = begin - np.concatenate(([0], np.cumsum(length)[:-1]))
    return np.arange(total, dtype=np.int64) + np.repeat(shift, length)
