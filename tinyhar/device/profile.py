"""Where the firmware's inference spends its time: per-node counts read over the link after each
window (PROFILE: TFLM's profiler in the runner), joined with each node's work from the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyhar.board import protocol as P
from tinyhar.errors import TinyharError
from tinyhar.lite.tflite_inspect import node_work

NO_PROFILER = (
    "has no profiler: build with `tinyhar build --profile` and flash it, or verify against "
    "`tinyhar sim --emulate`, which always counts instructions"
)


@dataclass(frozen=True)
class NodeProfile:
    """One node: what it is, its work, and its counts over the windows profiled."""

    index: int
    op: str
    name: str
    work: int
    work_unit: str  # "MAC" | "element"
    mean: float
    min: int
    max: int

    @property
    def per_unit(self) -> float:
        return self.mean / self.work if self.work else 0.0


@dataclass(frozen=True)
class OpTypeProfile:
    """All nodes of one op type together."""

    op: str
    nodes: int
    work: int
    work_unit: str
    mean: float
    share: float  # of the profiled total

    @property
    def per_unit(self) -> float:
        return self.mean / self.work if self.work else 0.0


@dataclass(frozen=True)
class Profile:
    """A per-op profile: the unit (instructions, cycles, ...), windows, nodes and op types."""

    unit: str
    windows: int
    total: float  # mean per window, all nodes
    nodes: list[NodeProfile]
    ops: list[OpTypeProfile]

    def to_json(self) -> dict:
        return {
            "unit": self.unit,
            "windows": self.windows,
            "total": round(self.total, 1),
            "nodes": [{**asdict(n), "mean": round(n.mean, 1)} for n in self.nodes],
            "ops": [
                {**asdict(o), "mean": round(o.mean, 1), "share": round(o.share, 4)}
                for o in self.ops
            ],
        }


class ProfileCollector:
    """Gathers the device's per-node counts after each inference of one model."""

    def __init__(self, model: bytes, port: str) -> None:
        self.nodes = node_work(model)
        self.port = port
        self.unit: int | None = None
        self.rows: list[list[int]] = []

    def add(self, unit: int, counts: list[int]) -> None:
        """One inference's counts, as `Link.profile()` returns them."""
        if unit == P.ProfileUnit.NONE or not counts:
            raise TinyharError(f"the firmware on {self.port} {NO_PROFILER}")
        if len(counts) != len(self.nodes):
            raise TinyharError(
                f"the firmware on {self.port} profiled {len(counts)} ops, the run's model has "
                f"{len(self.nodes)}: rebuild and flash the run's firmware"
            )
        if self.unit is not None and unit != self.unit:
            raise TinyharError(f"the firmware on {self.port} changed its profile's unit")
        self.unit = unit
        self.rows.append(counts)

    def result(self) -> Profile | None:
        """The profile of the windows gathered (None before the first)."""
        if not self.rows:
            return None
        counts = np.asarray(self.rows, dtype=np.float64)
        mean = counts.mean(axis=0)
        total = float(mean.sum())
        nodes = [
            NodeProfile(
                n.index,
                n.op,
                short_name(n.name),
                n.work,
                n.unit,
                float(mean[k]),
                int(counts[:, k].min()),
                int(counts[:, k].max()),
            )
            for k, n in enumerate(self.nodes)
        ]
        ops: dict[str, list[NodeProfile]] = {}
        for n in nodes:
            ops.setdefault(n.op, []).append(n)
        by_op = [
            OpTypeProfile(
                op,
                len(ns),
                sum(n.work for n in ns),
                ns[0].work_unit,
                sum(n.mean for n in ns),
                sum(n.mean for n in ns) / total if total else 0,
            )
            for op, ns in ops.items()
        ]
        by_op.sort(key=lambda o: -o.mean)
        unit = P.PROFILE_UNIT_NAMES.get(P.ProfileUnit(self.unit or 0), "counts")
        return Profile(unit, len(self.rows), total, nodes, by_op)


def short_name(tensor_name: str) -> str:
    """A node's name as people read it: the first of the converter's fused names."""
    return tensor_name.split(";")[0]


def format_profile(p: dict, measured_total: float | None = None) -> list[str]:
    """The op-type table, then the node table, of a profile as `Profile.to_json` writes it."""
    u, n = p["unit"], p["windows"]
    lines = [
        f"per-op profile ({u}, mean of {n} window{'s' * (n != 1)}): {p['total']:,.0f} {u} in "
        "the ops" + (f" of {measured_total:,.0f} per inference" if measured_total else ""),
        f"  {'op':<30} {'nodes':>5} {'work':>11} {'':<7} {u:>12} {'per unit':>9} {'share':>6}",
    ]
    for o in p["ops"]:
        per = o["mean"] / o["work"] if o["work"] else 0.0
        lines.append(
            f"  {o['op']:<30} {o['nodes']:>5} {o['work']:>11,} {o['work_unit']:<7} "
            f"{o['mean']:>12,.0f} {per:>9.2f} {o['share']:>6.1%}"
        )
    lines.append(f"  {'node':<4} {'op':<30} {'name':<34} {u:>12} {'per unit':>9}")
    for k in p["nodes"]:
        per = k["mean"] / k["work"] if k["work"] else 0.0
        lines.append(
            f"  {k['index']:<4} {k['op']:<30} {k['name'][:34]:<34} {k['mean']:>12,.0f} {per:>9.2f}"
        )
    return lines
