"""Sweep trials: expansion of a spec into typed trials, each one an existing hash-named run.

A trial's run id is the id the underlying machinery gives it (``train_<hash>``, ``lottery_<hash>``,
``compress_<hash>``), so the same configuration is the same run whichever sweep (or command) asks for it.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import random
from typing import Any

from netpress.data import DataHparams
from netpress.errors import ConfigError
from netpress.hparams import Hparams
from netpress.lottery.hparams import LotteryHparams
from netpress.models import ModelHparams
from netpress.pipeline.runs import compress_run_id
from netpress.runs import run_id
from netpress.sweep.spec import SweepSpec
from netpress.train import TrainingHparams

SECTION_TYPES: dict[str, type[Hparams]] = {"model": ModelHparams, "data": DataHparams, "training": TrainingHparams,
                                           "lottery": LotteryHparams}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One member of a sweep.

    Attributes:
        index: position in the sweep.
        kind: ``train``, ``compress`` or ``lottery``.
        params: the swept values of this trial, by ``section.field`` path.
        model, data, training: typed settings.
        lottery: the lottery settings (lottery trials).
        recipe: the recipe document (compress trials), validated.
    """

    index: int
    kind: str
    params: dict
    model: ModelHparams
    data: DataHparams
    training: TrainingHparams
    lottery: LotteryHparams | None = None
    recipe: dict | None = None
    batch_replicates: bool = False  # how lottery replicates train (not part of the run id)

    @property
    def run_id(self) -> str:
        """The id of the run this trial is (``train_...``, ``lottery_...``, ``compress_...``)."""
        if self.kind == "lottery":
            from netpress.lottery import experiment_id

            return experiment_id(self.model, self.data, self.training, self.lottery)
        if self.kind == "compress":
            return compress_run_id(self.dense_run_id, self.recipe_obj())
        return self.dense_run_id

    @property
    def dense_run_id(self) -> str:
        return run_id("train", self.model, self.data, self.training)

    def recipe_obj(self):
        from netpress.pipeline.recipe import parse_recipe

        return parse_recipe(self.recipe, self.recipe.get("name", "custom"))

    def to_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "params": self.params, "model": self.model.to_dict(),
                "data": self.data.to_dict(), "training": self.training.to_dict(),
                "lottery": None if self.lottery is None else self.lottery.to_dict(), "recipe": self.recipe,
                "batch_replicates": self.batch_replicates}

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        return cls(d["index"], d["kind"], d["params"], ModelHparams(**d["model"]), DataHparams(**d["data"]),
                   TrainingHparams(**d["training"]), None if d["lottery"] is None else LotteryHparams(**d["lottery"]),
                   d["recipe"], d.get("batch_replicates", False))


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of ``spec``, validated (a bad value fails here, before any work).

    Args:
        spec: the sweep.

    Returns:
        Trials in a stable order (grid: row-major over ``params`` in spec order; random: draw order).

    Raises:
        ConfigError: naming the parameter path whose value is invalid.

    Example:
        >>> [t.params for t in expand(parse_spec({"params": {"training.lr": [0.1, 0.01]}}))]
        [{'training.lr': 0.1}, {'training.lr': 0.01}]
    """
    points = _grid(spec.params) if spec.search == "grid" else _random(spec.params, spec.samples, spec.seed)
    trials = [_trial(spec, i, p) for i, p in enumerate(points)]
    ids = {}
    for t in trials:  # two random draws can coincide; one run serves both, so keep the first
        ids.setdefault(t.run_id, t)
    return [dataclasses.replace(t, index=i) for i, t in enumerate(ids.values())]


def _grid(params: dict) -> list[dict]:
    keys = list(params)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]


def _random(params: dict, samples: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{k: _draw(rng, v) for k, v in params.items()} for _ in range(samples)]


def _draw(rng: random.Random, values: Any) -> Any:
    if isinstance(values, list):
        return values[rng.randrange(len(values))]
    (how, (lo, hi)), = values.items()
    if how == "int":
        return rng.randint(int(lo), int(hi))
    if how == "log_uniform":
        return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.6g}")
    return float(f"{rng.uniform(lo, hi):.6g}")


def _trial(spec: SweepSpec, index: int, point: dict) -> Trial:
    sections = {s: dict(spec.base.get(s) or {}) for s in SECTION_TYPES}
    recipe = _recipe_doc(spec.base.get("recipe", "deep-compression")) if spec.kind == "compress" else None
    for path, value in point.items():
        section, rest = path.split(".", 1)
        if section == "recipe":
            _set_path(recipe, rest.split("."), value, path)
        else:
            sections[section][rest] = value
    typed = {s: _build(cls, sections[s], s, point, spec.kind) for s, cls in SECTION_TYPES.items()
             if s != "lottery" or spec.kind == "lottery"}
    trial = Trial(index, spec.kind, dict(point), typed["model"], typed["data"], typed["training"],
                  typed.get("lottery"), recipe, spec.batch_replicates)
    if recipe is not None:
        try:
            trial.recipe_obj()
        except ConfigError as exc:
            raise ConfigError(f"recipe.{exc}") from None
    return trial


def _build(cls: type[Hparams], values: dict, section: str, point: dict, kind: str) -> Hparams:
    try:
        if kind == "lottery" and cls is TrainingHparams:  # lottery trials start from Frankle & Carbin's settings
            from netpress.lottery.hparams import lottery_training_defaults

            cls.from_dict(values)  # names the unknown keys
            return lottery_training_defaults().replace(**values)
        return cls.from_dict(values)
    except ConfigError as exc:
        swept = [p for p in point if p.startswith(section + ".")]
        where = f"params {', '.join(swept)} -> " if swept else ""
        raise ConfigError(f"{where}{section}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from None


def _recipe_doc(ref: Any) -> dict:
    from netpress.pipeline.recipe import load_recipe

    if isinstance(ref, dict):
        return copy.deepcopy(ref)
    recipe = load_recipe(str(ref))
    return {"name": recipe.name, "stages": copy.deepcopy(recipe.to_dict()["stages"])}


def _set_path(doc: Any, keys: list[str], value: Any, full: str) -> None:
    """Set ``doc[k0][k1]...`` (list indices as integers, a stage entry as ``stages.N.kind.field``)."""
    node = doc
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"params.{full}: no item {key} (the list has {len(node)})")
            key = int(key)
        elif not isinstance(node, dict) or (not last and key not in node):
            raise ConfigError(f"params.{full}: no key {key!r} in the recipe")
        if last:
            node[key] = value
        else:
            node[key] = {} if node[key] is None else node[key]
            node = node[key]
