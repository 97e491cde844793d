"""Sweep specifications: a typed, validated YAML document of a base configuration and the parameters to vary.

Example spec::

    kind: train                  # train | compress | lottery
    search: grid                 # grid | random
    base:
      model: {name: lenet300}
      data: {name: digits}
      training: {steps: 2ep}
    params:
      training.lr: [0.01, 0.1]
      training.seed: [0, 1, 2]   # or the shorthand `seeds: [0, 1, 2]`

Random search draws ``samples`` trials (``seed``-ed); a parameter is then a list (uniform choice) or a range
``{uniform: [a, b]}``, ``{log_uniform: [a, b]}``, ``{int: [a, b]}``. Compress sweeps vary recipe fields by
path: ``recipe.stages.0.prune.sparsity``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require

KINDS = ("train", "compress", "lottery")
SEARCHES = ("grid", "random")
SECTIONS = {"train": ("model", "data", "training"), "compress": ("model", "data", "training", "recipe"),
            "lottery": ("model", "data", "training", "lottery")}
RANGES = ("uniform", "log_uniform", "int")
TOP_KEYS = ("name", "kind", "search", "samples", "seed", "base", "params", "seeds", "batch_replicates")


@dataclasses.dataclass(frozen=True)
class SweepSpec(Hparams):
    """What a sweep runs.

    Attributes:
        name: a label for reports.
        kind: ``train`` (one training run per trial), ``compress`` (a recipe on a trained dense run) or
            ``lottery`` (a lottery-ticket experiment per trial).
        search: ``grid`` (every combination) or ``random`` (``samples`` draws).
        samples: number of random trials (random search only).
        seed: seed of the random draws.
        base: the configuration every trial starts from: ``{model: {...}, data: {...}, training: {...},
            lottery: {...}, recipe: name | path | {stages: [...]}}``.
        params: ``{"section.field": values}``; values a list, or (random search) a range mapping.
        batch_replicates: lottery trials train each level's replicates and controls together (stacked
            parameters; same numbers up to float reassociation).
    """

    name: str = "sweep"
    kind: str = "train"
    search: str = "grid"
    samples: int = 0
    seed: int = 0
    base: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    batch_replicates: bool = False

    def validate(self) -> None:
        require(self.kind in KINDS, f"kind: unknown {self.kind!r}; known: {', '.join(KINDS)}")
        require(self.search in SEARCHES, f"search: unknown {self.search!r}; known: {', '.join(SEARCHES)}")
        require(isinstance(self.base, dict), "base: must be a mapping of sections")
        for section in self.base:
            require(section in SECTIONS[self.kind],
                    f"base.{section}: unknown section for kind {self.kind}; known: {', '.join(SECTIONS[self.kind])}")
        require(isinstance(self.batch_replicates, bool), f"batch_replicates: must be true or false, got {self.batch_replicates!r}")
        require(not self.batch_replicates or self.kind == "lottery", "batch_replicates: only for kind lottery")
        require(isinstance(self.params, dict), "params: must be a mapping of 'section.field' to values")
        if self.search == "random":
            require(isinstance(self.samples, int) and self.samples >= 1, f"samples: must be an integer >= 1, got {self.samples!r}")
        for path, values in self.params.items():
            _check_values(self.kind, self.search, str(path), values)


def _check_values(kind: str, search: str, path: str, values: Any) -> None:
    section = path.split(".", 1)[0]
    require("." in path and section in SECTIONS[kind],
            f"params.{path}: must be 'section.field' with a section of {', '.join(SECTIONS[kind])}")
    if isinstance(values, list):
        require(len(values) > 0, f"params.{path}: the list of values is empty")
        return
    require(search == "random" and isinstance(values, dict) and len(values) == 1,
            f"params.{path}: must be a list of values" + (" or a range {uniform|log_uniform|int: [a, b]}" if search == "random" else ""))
    (how, bounds), = values.items()
    require(how in RANGES, f"params.{path}.{how}: unknown range; known: {', '.join(RANGES)}")
    require(isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
            and bounds[0] <= bounds[1], f"params.{path}.{how}: must be [low, high] with low <= high, got {bounds!r}")
    require(how != "log_uniform" or bounds[0] > 0, f"params.{path}.log_uniform: bounds must be > 0, got {bounds!r}")


def parse_spec(doc: Any) -> SweepSpec:
    """Validate a spec document (already loaded from YAML).

    Args:
        doc: the mapping.

    Returns:
        :class:`SweepSpec` (``seeds: [...]`` becomes ``params['training.seed']``).

    Raises:
        ConfigError: naming the first offending key.

    Example:
        >>> parse_spec({"kind": "train", "params": {"training.lr": [0.1, 0.01]}}).params
        {'training.lr': [0.1, 0.01]}
    """
    if not isinstance(doc, dict):
        raise ConfigError("sweep spec: must be a mapping (kind, search, base, params, ...)")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; known: {', '.join(TOP_KEYS)}")
    doc = dict(doc)
    seeds = doc.pop("seeds", None)
    if seeds is not None:
        params = dict(doc.get("params") or {})
        require("training.seed" not in params, "seeds: give either seeds or params.training.seed, not both")
        params["training.seed"] = seeds
        doc["params"] = params
    doc["base"] = doc.get("base") or {}
    doc["params"] = doc.get("params") or {}
    return SweepSpec(**doc)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file.

    Args:
        path: the file.

    Returns:
        :class:`SweepSpec`.

    Raises:
        ConfigError: unreadable file, invalid YAML or invalid content.

    Example:
        >>> load_spec("sweep.yaml").kind
        'train'
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"sweep spec {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    spec = parse_spec(doc)
    return spec if doc.get("name") else spec.replace(name=path.stem)
