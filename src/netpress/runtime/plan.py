"""Hardware-aware kernel choice: time every applicable kernel on this machine, for each layer's real input shape.

The choice per layer: the fastest kind, summed over the example batch sizes as ratios to the best kind at each
batch; among kinds within ``slack`` of that best score, the one with the fewest resident bytes. Timings can be
cached in a JSON file keyed by machine + layer signature, and a whole plan can be saved and re-applied.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.fileio import atomic_write_text

Timer = Callable[[nn.Module, torch.Tensor], float]


@dataclasses.dataclass
class LayerPlan:
    """One layer's choice.

    Attributes:
        name: module name; op: ``Linear`` / ``Conv2d`` / ``Embedding``; weight_shape; input_shapes (one per batch).
        kind: the chosen kernel; seconds: ``{kind: [median seconds per example input]}`` for every applicable kind;
        resident_bytes: ``{kind: bytes}``; error: int8 re-quantization error of the chosen kind (0 when exact);
        group: the sibling layers fused with this one into one int8 GEMM (comma-separated; "" when not fused).
    """

    name: str
    op: str
    weight_shape: list[int]
    input_shapes: list[list[int]]
    kind: str
    seconds: dict[str, list[float]]
    resident_bytes: dict[str, int]
    error: float = 0.0
    group: str = ""


@dataclasses.dataclass
class Plan:
    """The per-layer kernel plan of a converted model (JSON-able via ``to_dict`` / ``from_dict``).

    Attributes:
        machine: :func:`machine_id` of the machine the timings come from.
        layers: one :class:`LayerPlan` per converted layer.
        lean_layers: the BERT-like encoder layers that run the lean forward (:mod:`netpress.runtime.encoder`).
    """

    machine: str
    layers: list[LayerPlan]
    lean_layers: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"machine": self.machine, "layers": [dataclasses.asdict(layer) for layer in self.layers],
                "lean_layers": list(self.lean_layers)}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        try:
            return cls(d["machine"], [LayerPlan(**layer) for layer in d["layers"]], list(d.get("lean_layers", [])))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a runtime plan ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Plan":
        return cls.from_dict(json.loads(open(path).read()))

    def choices(self) -> dict[str, str]:
        return {layer.name: layer.kind for layer in self.layers}

    def rows(self) -> list[dict]:
        """One table row per layer: kind, microseconds per kind and batch, resident bytes of the choice."""
        out = []
        for layer in self.layers:
            us = {k: "/".join(f"{1e6 * s:.0f}" for s in v) for k, v in layer.seconds.items()}
            out.append({"layer": layer.name, "op": layer.op, "shape": "x".join(map(str, layer.weight_shape)),
                        "kind": layer.kind + ("+fused" if layer.group else ""), "us_per_batch": " ".join(f"{k}={v}" for k, v in us.items()),
                        "bytes": layer.resident_bytes.get(layer.kind, 0), "error": f"{layer.error:.1e}"})
        return out


def machine_id() -> str:
    """Identifies the hardware + software the timings belong to."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}|{torch.backends.cpu.get_cpu_capability()}|torch {torch.__version__}|{torch.get_num_threads()}t"


@torch.inference_mode()
def median_seconds(modules: dict[str, nn.Module], x: torch.Tensor, repeats: int = 30, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each module on ``x``, measured interleaved (round robin) to share machine load."""
    for m in modules.values():
        for _ in range(warmup):
            m(x)
    times: dict[str, list[float]] = {k: [] for k in modules}
    for _ in range(repeats):
        for k, m in modules.items():
            t = time.perf_counter()
            m(x)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


MIN_SAVING = 0.1  # a slower kind wins on memory only when it saves at least this fraction of the fastest's bytes


def choose(seconds: dict[str, list[float]], resident: dict[str, int], slack: float,
           allowance: list[float] | None = None) -> str:
    """The kind with the best summed latency ratio; among kinds within ``slack`` of it (or costing at most
    ``allowance[i]`` seconds more than the best at every input ``i``) that save at least ``MIN_SAVING`` of its
    resident bytes, the smallest in memory.

    Example:
        >>> choose({"dense": [2e-6], "int8": [1e-6]}, {"dense": 400, "int8": 100}, slack=0.1)
        'int8'
    """
    kinds = list(seconds)
    n = len(next(iter(seconds.values())))
    best = [min(seconds[k][i] for k in kinds) for i in range(n)]
    score = {k: sum(seconds[k][i] / max(best[i], 1e-12) for i in range(n)) / n for k in kinds}
    fastest = min(kinds, key=lambda k: (score[k], resident[k]))
    cheap = [k for k in kinds if allowance and all(seconds[k][i] - best[i] <= allowance[i] for i in range(n))]
    near = [k for k in kinds if (score[k] <= score[fastest] * (1 + slack) or k in cheap)
            and resident[k] <= (1 - MIN_SAVING) * resident[fastest]]
    return min(near, key=lambda k: (resident[k], score[k])) if near else fastest


class TimingCache:
    """``{key: seconds}`` in a JSON file; a key is machine + op + weight shape + density + input shape + kind."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = path
        self.data: dict[str, float] = {}
        if path and os.path.exists(path):
            try:
                self.data = {k: float(v) for k, v in json.loads(open(path).read()).items()}
            except (ValueError, AttributeError, TypeError):
                raise ConfigError(f"{path}: not a runtime timing cache (JSON object of seconds)") from None

    @staticmethod
    def key(machine: str, op: str, weight: torch.Tensor, x: torch.Tensor, kind: str) -> str:
        density = float((weight != 0).float().mean())
        return f"{machine}|{op}|{list(weight.shape)}|d={density:.3f}|{list(x.shape)}|{kind}"

    def save(self) -> None:
        if self.path:
            atomic_write_text(Path(self.path), json.dumps(self.data, indent=0, sort_keys=True))
