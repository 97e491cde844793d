"""Stage implementations. Each stage changes a model in place and knows how to *rebuild* its structural change
(masks, shared weights, factorised layers) so a finished stage can be restored from its saved ``state_dict``
without pickling modules.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from netpress.data import DataSplits
from netpress.prune.masks import plain_state_dict
from netpress.prune.schedules import round_targets
from netpress.pipeline.recipe import (DistillStage, EncodeStage, LowRankStage, PruneStage, QuantizeStage, layer_refs,
                                      layer_value)
from netpress.registry import Registry
from netpress.train import TrainingHparams, train
from netpress.train.trainer import LossFn, cross_entropy


@dataclasses.dataclass
class Context:
    """What stages share: data, base training settings, where to write, and the current training loss."""

    data: DataSplits
    train_hp: TrainingHparams
    folder: Path | None
    device: str = "auto"
    progress: bool | None = None
    loss_fn: LossFn = cross_entropy
    teacher: nn.Module | None = None
    out: Path | None = None
    recipe: dict | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)  # per-stage facts for the report (targets, bits, ...)

    def stage_dir(self, index: int, kind: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{index:02d}_{kind}"


class StageRunner:
    """Base: ``run`` applies the stage; ``rebuild`` replays only its structural change (for resuming)."""

    def __init__(self, hp):
        self.hp = hp

    def run(self, model: nn.Module, ctx: Context, folder: Path | None) -> nn.Module:
        raise NotImplementedError

    def rebuild(self, model: nn.Module, state: dict[str, torch.Tensor], folder: Path, ctx: Context) -> nn.Module:
        """Give ``model`` the structure this stage's saved ``state`` expects (values come from ``state``)."""
        return model


RUNNERS: Registry[Callable[..., StageRunner]] = Registry("stage")


def _retrain(model: nn.Module, ctx: Context, overrides: dict, folder: Path | None, desc: str) -> None:
    if not overrides:
        return
    hp = ctx.train_hp.replace(**overrides)
    train(model, ctx.data, hp, checkpoint_dir=folder, device=ctx.device, loss_fn=ctx.loss_fn,
          progress=ctx.progress, desc=desc)


def _targets(model: nn.Module, table: dict, default: float) -> dict[str, float]:
    return {r.name: float(layer_value(table, r, default)) for r in layer_refs(model)}


@RUNNERS.register("train")
class TrainRunner(StageRunner):
    def run(self, model, ctx, folder):
        _retrain(model, ctx, {"steps": ctx.train_hp.steps, **self.hp.overrides}, folder, "train")
        return model


@RUNNERS.register("prune")
class PruneRunner(StageRunner):
    """Iterative (Han 2015) or one-shot magnitude pruning to per-layer targets, retraining after each round."""

    hp: PruneStage

    def run(self, model, ctx, folder):
        from netpress.prune import apply_masks, compute_masks

        targets, overall = self._final_targets(model, ctx)
        rounds = 1 if self.hp.schedule == "oneshot" else self.hp.rounds
        ctx.notes["prune_targets"] = targets
        for r in range(1, rounds + 1):
            round_dir = None if folder is None else folder / f"round{r}"
            if round_dir is not None and (round_dir / "done").exists():
                self._restore_round(model, round_dir)
                continue
            step = {n: round_targets(t, rounds)[r - 1] for n, t in targets.items()}  # same share of survivors
            masks = compute_masks(model, sparsity=round_targets(overall, rounds)[r - 1], score=self.hp.score,
                                  scope=self.hp.scope, layer_sparsity=step, data=ctx.data)
            apply_masks(model, masks)
            _retrain(model, ctx, self.hp.retrain, round_dir, f"prune round {r}/{rounds}")
            if round_dir is not None:
                round_dir.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_dict(), round_dir / "state.pt")
                (round_dir / "done").write_text("")
        return model

    def _final_targets(self, model, ctx) -> tuple[dict[str, float], float]:
        """Per-layer targets (layers the recipe names, or all with ``sensitivity``) and the overall target
        shared by the other layers under the recipe's ``scope``."""
        if self.hp.schedule == "sensitivity":
            from netpress.pipeline.search import sensitive_sparsity

            return sensitive_sparsity(model, ctx.data, self.hp), 0.0
        if self.hp.scope == "local":
            return _targets(model, self.hp.layers, self.hp.sparsity), 0.0
        named = {r.name: float(layer_value(self.hp.layers, r)) for r in layer_refs(model)
                 if layer_value(self.hp.layers, r) is not None}
        return named, self.hp.sparsity

    def _restore_round(self, model, round_dir: Path) -> None:
        state = torch.load(round_dir / "state.pt", weights_only=True)
        self.rebuild(model, state, round_dir, None)
        model.load_state_dict(state)

    def rebuild(self, model, state, folder, ctx):
        from netpress.prune import apply_masks

        from netpress.prune.masks import masks_from_state_dict

        return apply_masks(model, masks_from_state_dict(state))


@RUNNERS.register("quantize")
class QuantizeRunner(StageRunner):
    """k-means weight sharing per layer (pruned zeros stay zero) and centroid fine-tuning."""

    hp: QuantizeStage

    def run(self, model, ctx, folder):
        bits = self._bits(model, ctx)
        ctx.notes["bits"] = bits
        self._share(model, bits)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "bits.json").write_text(json.dumps(bits))
        _retrain(model, ctx, self.hp.finetune, None if folder is None else folder / "finetune", "centroid fine-tune")
        return model

    def _bits(self, model, ctx) -> dict[str, int]:
        if self.hp.method != "sensitivity":
            bits = {n: int(b) for n, b in _targets(model, self.hp.bits, 8).items()}
        else:
            from netpress.pipeline.search import sensitive_bits

            bits = sensitive_bits(model, ctx.data, self.hp)
        weights = plain_state_dict(model)
        return {n: _fit_bits(b, int((weights[n] != 0).sum())) for n, b in bits.items()}

    def _share(self, model, bits: dict[str, int]) -> None:
        from netpress.prune import strip
        from netpress.quantize import share_weights

        strip(model)
        if self.hp.method == "uniform":  # per-channel affine codes at each tensor's bits
            from netpress.quantize import UniformSpec, quantize_weights

            specs = {n: UniformSpec(bits=b, granularity="channel") for n, b in bits.items()}
            quantize_weights(model, specs, names=list(bits))
        else:
            share_weights(model, bits=bits, init=self.hp.init)

    def rebuild(self, model, state, folder, ctx):
        bits = json.loads((folder / "bits.json").read_text())
        ctx.notes["bits"] = bits
        self._share(model, bits)
        return model


def _fit_bits(bits: int, alive: int) -> int:
    """Fewer bits when a heavily pruned tensor has fewer surviving weights than 2**bits centroids."""
    while bits > 1 and 2 ** bits > alive:
        bits -= 1
    return bits


@RUNNERS.register("distill")
class DistillRunner(StageRunner):
    """Switch later retraining / fine-tuning to a distillation loss whose teacher is the pipeline's input model."""

    hp: DistillStage

    def run(self, model, ctx, folder):
        from netpress.distill import DistillationLoss, DistillHparams

        teacher = ctx.teacher or copy.deepcopy(model)
        hp = DistillHparams(temperature=self.hp.temperature, alpha=self.hp.alpha, mode=self.hp.mode)
        ctx.loss_fn = DistillationLoss(teacher, hp, ctx.data.train, device=ctx.device)
        return model

    def rebuild(self, model, state, folder, ctx):
        return self.run(model, ctx, None)


@RUNNERS.register("lowrank")
class LowRankRunner(StageRunner):
    """Truncated-SVD factorisation of Linear layers, then optional fine-tuning."""

    hp: LowRankStage

    def run(self, model, ctx, folder):
        self._factorize(model)
        _retrain(model, ctx, self.hp.finetune, None if folder is None else folder / "finetune", "low-rank fine-tune")
        return model

    def _factorize(self, model):
        from netpress.lowrank import LowRankHparams, apply_ranks, plan_ranks

        ranks, spectra = plan_ranks(model, LowRankHparams(energy=self.hp.energy))
        apply_ranks(model, {n: r for n, r in ranks.items() if r is not None}, spectra)
        return model

    def rebuild(self, model, state, folder, ctx):
        return self._factorize(model)  # same input weights -> same ranks; values then come from ``state``


@RUNNERS.register("encode")
class EncodeRunner(StageRunner):
    """Write the ``.netp`` file."""

    hp: EncodeStage

    def run(self, model, ctx, folder):
        from netpress.encode import save

        if ctx.out is not None:
            save(model, ctx.out, coder=self.hp.coder, recipe=ctx.recipe, metrics=ctx.metrics)
        return model
