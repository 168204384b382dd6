"""Deterministic synthetic households around the sample network, vectorised (for benchmarks).

    python -m bench.geo_synth --households 1000000 --out var/bench/households-1m.csv

Points lie 8-40 m off a pipe of the sample network, chosen by pipe length (about 1.5 % lie
250-400 m away, as in config/sample/); every text column is filled as a real file would be.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from incident.geo import LinkKind, Network
from incident.geo.projection import LocalMetric
from incident.households import read_network
from incident.households.model import COLUMNS
from incident.households.table import STRING, HouseholdTable
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = BUNDLED_DIR / "sample"
LANGUAGES = ("ar", "en", "es", "fr", "vi", "zh-CN")
LANGUAGE_P = (0.03, 0.70, 0.12, 0.03, 0.04, 0.08)
STREETS = np.array(
    ["Maple St", "Oak Ave", "Cedar Rd", "Elm St", "Walnut Ln", "Ridge Dr", "Mill Ct", "Spring Pike"]
)


def positions(network: Network, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    paths = [np.asarray(k.path) for k in network.links if k.kind is LinkKind.pipe]
    seg = np.vstack([np.hstack([p[:-1], p[1:]]) for p in paths])
    allpts = seg.reshape(-1, 2)
    local = LocalMetric(*((allpts.min(0) + allpts.max(0)) / 2))
    a, b = local.xy(seg[:, :2]), local.xy(seg[:, 2:])
    length = np.hypot(*(b - a).T)
    pick = rng.choice(len(length), n, p=length / length.sum())
    d = b[pick] - a[pick]
    norm = np.hypot(*d.T)
    norm[norm == 0] = 1.0
    off = rng.uniform(8.0, 40.0, n)
    far = rng.random(n) < 0.015
    off[far] = rng.uniform(250.0, 400.0, int(far.sum()))
    off *= rng.choice([-1.0, 1.0], n)
    xy = (
        a[pick]
        + d * rng.random(n)[:, None]
        + np.column_stack([-d[:, 1], d[:, 0]]) / norm[:, None] * off[:, None]
    )
    lonlat = local.lonlat(xy)
    return np.round(lonlat[:, 0], 6), np.round(lonlat[:, 1], 6)


def households(network: Network, n: int, seed: int = 7) -> HouseholdTable:
    """``n`` households as a table; the same ``seed`` gives the same table."""
    rng = np.random.default_rng(seed + 1)
    lon, lat = positions(network, n, seed)
    idx = np.arange(1, n + 1)
    # Fictional numbers (555 exchange), one per household: area code and line from the index.
    area = (201 + (idx // 10_000) % 789).astype(str)
    line = np.char.zfill((idx % 10_000).astype(str), 4)
    rng.integers(100, 200, n)  # keeps the later draws (and so every other column) as they were
    rng.integers(201, 990, n)
    sms = np.where(rng.random(n) < 0.85, np.char.add(np.char.add("+1", area), np.char.add("555", line)), "")
    voice = np.where(rng.random(n) < 0.4, sms, "")
    token = np.where(rng.random(n) < 0.35, np.char.add("app-", rng.integers(0, 2**47, n).astype(str)), "")
    address = np.char.add(
        np.char.add(rng.integers(100, 9900, n).astype(str), " "), STREETS[rng.integers(0, 8, n)]
    )
    r = rng.random(n)
    rank = np.select([r < 0.02, r < 0.025, r < 0.065], [0, 1, 2], 3).astype(np.int8)
    o = rng.random(n)
    opt = np.select([o < 0.05, o < 0.07, o < 0.08], [1, 2, 3], 0).astype(np.uint8)
    return HouseholdTable(
        account_id=np.char.add("ACC-", np.char.zfill(idx.astype(str), 7)).astype(STRING),
        lon=lon, lat=lat, address=np.char.add(address, ", Sampletown KY").astype(STRING),
        languages=LANGUAGES, language_code=rng.choice(len(LANGUAGES), n, p=LANGUAGE_P).astype(np.int16),
        sms=sms.astype(STRING), voice=voice.astype(STRING), app_token=token.astype(STRING),
        priority_rank=rank, opt_out_bits=opt, email=np.full(n, "", STRING),
        need_bits=np.zeros(n, np.uint8), flags=np.zeros(n, np.uint8),
    )  # fmt: skip


def write_csv(table: HouseholdTable, path: Path) -> None:
    names = {0: "medical", 1: "critical_facility", 2: "vulnerable", 3: ""}
    opt = {0: "", 1: "sms", 2: "voice", 3: "sms|voice"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(COLUMNS)
        for begin in range(0, len(table), 50_000):
            s = slice(begin, begin + 50_000)
            out.writerows(
                zip(
                    table.account_id[s].tolist(), [f"{v:.6f}" for v in table.lon[s].tolist()],
                    [f"{v:.6f}" for v in table.lat[s].tolist()], table.address[s].tolist(),
                    [table.languages[c] for c in table.language_code[s].tolist()], table.sms[s].tolist(),
                    table.voice[s].tolist(), table.app_token[s].tolist(),
                    [names[c] for c in table.priority_rank[s].tolist()],
                    [opt[c] for c in table.opt_out_bits[s].tolist()], strict=True,
                )
            )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "households-1m.csv")
    args = parser.parse_args(argv)
    write_csv(households(read_network(SAMPLE / "network.inp"), args.households, args.seed), args.out)
    print(f"wrote {args.households} households to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
