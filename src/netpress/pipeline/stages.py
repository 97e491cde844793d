"""Stage implementations. Each stage changes a model in place and knows how to *rebuild* its structural change
(masks, shared weights, factorised layers) so a finished stage can be restored from its saved ``state_dict``
without pickling modules.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from netpress.data import DataSplits
from netpress.fileio import atomic_torch_save, atomic_write_text
from netpress.prune.masks import plain_state_dict
from netpress.prune.schedules import AGP, round_targets, training_iterations
from netpress.pipeline.recipe import (DistillStage, EncodeStage, LowRankStage, PruneStage, QuantizeStage, layer_refs,
                                      layer_value)
from netpress.registry import Registry
from netpress.train import TrainingHparams, correctness, train
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
    reference_correct: torch.Tensor | None = None  # per validation example: the input model was right (budgets)

    def budget_check(self, model: nn.Module, budget: float, confidence: float) -> dict:
        """Whether ``model`` stays within ``budget`` of the input model on the validation data: the paired drop
        in accuracy plus ``confidence`` standard errors of it (same examples, so the noise both models share
        cancels) must not exceed the budget. Returns the record of the check."""
        diff = self.reference_correct.double() - correctness(model, self.data.val).double()
        drop = float(diff.mean())
        se = float(diff.std() / math.sqrt(diff.numel())) if diff.numel() > 1 else 0.0
        accuracy = float(self.reference_correct.double().mean()) - drop
        return {"val_accuracy": accuracy, "drop": drop, "se": se, "budget": budget, "examples": diff.numel(),
                "within": drop + confidence * se <= budget + 1e-12}

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


def _retrain(model: nn.Module, ctx: Context, overrides: dict, folder: Path | None, desc: str,
             callbacks: Callable[[TrainingHparams], list] | None = None) -> None:
    if not overrides:
        return
    hp = ctx.train_hp.replace(**overrides)
    train(model, ctx.data, hp, checkpoint_dir=folder, device=ctx.device, loss_fn=ctx.loss_fn,
          progress=ctx.progress, desc=desc, callbacks=callbacks(hp) if callbacks else ())


def _read_record(round_dir: Path | None) -> dict | None:
    path = None if round_dir is None else round_dir / "record.json"
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def _round_state(round_dir: Path) -> dict:
    return torch.load(round_dir / "state.pt", weights_only=True)


def _records(folder: Path, prefix: str, start: int) -> list[dict]:
    """The records of consecutive trial folders ``<prefix><start>``, ``<prefix><start+1>``, ... that finished."""
    out, i = [], start
    while (record := _read_record(folder / f"{prefix}{i}")) is not None:
        out.append(record)
        i += 1
    return out


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

        if self.hp.schedule == "budget":
            return self._budget(model, ctx, folder)
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

    def _budget(self, model, ctx, folder):
        """Prune along a path (``prune_fraction`` of the survivors per round, each round retrained from the last)
        until two rounds in a row are over the budget beyond doubt (drop minus ``confidence`` standard errors above
        it: one noisy round does not end the path), the cap or ``rounds``; then keep the sparsest round whose
        drop, smoothed over the path (:func:`netpress.pipeline.budget.choose_round`), fits the budget, or the
        input model if none does. Each finished round is recorded with its state, so a rerun replays it (without
        a folder the rounds' states are held in memory, on the CPU, until the choice)."""
        if self.hp.control:
            self._control_reference(model, ctx, folder)
        path, records, states, behind = copy.deepcopy(model), [], [], None
        for r in range(1, self.hp.rounds + 1):
            round_dir = None if folder is None else folder / f"round{r}"
            record = _read_record(round_dir)
            if record is None:
                if behind is not None:  # the path model still holds an earlier state than the last replayed round
                    self._restore_round(path, behind)
                    behind = None
                was_over = bool(records) and records[-1].get("over", False)
                record, state = self._path_round(path, ctx, round_dir, was_over, f"budget round {r}")
                states.append(state if folder is None else None)
            else:
                behind = round_dir
                states.append(None)
            records.append(record)
            if record["stop"]:
                break
        records = self._annotated(records)
        ctx.notes["budget_rounds"] = records
        chosen = next((i for i, rec in enumerate(records) if rec["chosen"]), -1)
        if chosen >= 0:
            self._load_round(model, states[chosen] if folder is None else _round_state(folder / f"round{chosen + 1}"))
        return model

    def _path_round(self, path, ctx, round_dir, was_over: bool, desc: str) -> tuple[dict, dict]:
        from netpress.prune import apply_masks, compute_masks
        from netpress.prune.masks import sparsity

        start = sparsity(path)
        target = min(self.hp.sparsity, 1 - (1 - start) * (1 - self.hp.prune_fraction))
        kwargs = dict(score=self.hp.score, scope=self.hp.scope, data=ctx.data)
        ramp = (lambda hp: [self._ramp(path, hp, ctx, start, target, kwargs)]) if self.hp.ramp else None
        if ramp is None:
            apply_masks(path, compute_masks(path, target, **kwargs))
        _retrain(path, ctx, self.hp.retrain, round_dir, desc, callbacks=ramp)
        check = ctx.budget_check(path, self.hp.accuracy_budget, self.hp.confidence)
        over = check["drop"] - self.hp.confidence * check["se"] > self.hp.accuracy_budget + 1e-12
        record = {"sparsity": target, **check, "over": over,
                  "stop": (over and was_over) or target >= self.hp.sparsity - 1e-9}
        state = {k: v.detach().cpu().clone() for k, v in path.state_dict().items()}
        if round_dir is not None:
            round_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(state, round_dir / "state.pt")
            atomic_write_text(round_dir / "record.json", json.dumps(record, indent=2) + "\n")  # last: round done
        return record, state

    def _control_reference(self, model, ctx, folder) -> None:
        """With ``control``: the input model retrained like one round, nothing pruned; whichever of it and the
        input model is more accurate on validation data becomes the budget reference of this and later stages.
        Its per-example correctness is stored in ``<folder>/control`` (a rerun or a restored stage reads it)."""
        control_dir = None if folder is None else folder / "control"
        stored = None if control_dir is None else control_dir / "correct.pt"
        if stored is not None and stored.exists():
            correct = torch.load(stored, weights_only=True)
        else:
            control = copy.deepcopy(model)
            _retrain(control, ctx, self.hp.retrain, control_dir, "budget control (nothing pruned)")
            correct = correctness(control, ctx.data.val)
            if stored is not None:
                atomic_torch_save(correct, stored)
        inputs, retrained = float(ctx.reference_correct.double().mean()), float(correct.double().mean())
        use_control = retrained > inputs
        if use_control:
            ctx.reference_correct = correct
        ctx.notes["budget_control"] = {"input_val_accuracy": inputs, "control_val_accuracy": retrained,
                                       "reference": "control" if use_control else "input"}

    def _ramp(self, path, hp, ctx, start: float, target: float, kwargs: dict):
        """The AGP callback that takes ``path`` from ``start`` to ``target`` sparsity over the first ``ramp`` of
        a retraining under ``hp`` (about 40 pruning steps); ``path`` gets its mask slots now, before a
        checkpoint of the round is resumed."""
        end = max(1, round(self.hp.ramp * training_iterations(hp, ctx.data)))
        agp = AGP(target, start=0, end=end, every=max(1, end // 40), initial=start, **kwargs)
        agp.attach(path)
        return agp

    def _annotated(self, records: list[dict]) -> list[dict]:
        """``records`` with each round's smoothed drop, pooled standard error and whether it is the one kept."""
        from netpress.pipeline.budget import choose_round

        if not records:
            return records
        floor = 1.0 / max(records[0].get("examples", 10_000), 1)  # records of older runs lack the count
        chosen, fitted, pooled = choose_round([r["drop"] for r in records], [r["se"] for r in records],
                                              self.hp.accuracy_budget, self.hp.confidence, floor)
        return [{**r, "fitted_drop": f, "pooled_se": p, "chosen": i == chosen}
                for i, (r, f, p) in enumerate(zip(records, fitted, pooled))]

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
        self._load_round(model, _round_state(round_dir))

    def _load_round(self, model, state: dict) -> None:
        """Give ``model`` a round's masks and values."""
        self.rebuild(model, state, None, None)
        model.load_state_dict(state)

    def rebuild(self, model, state, folder, ctx):
        from netpress.prune import apply_masks
        from netpress.prune.masks import masks_from_state_dict

        if ctx is not None and self.hp.schedule == "budget":
            if self.hp.control:
                self._control_reference(model, ctx, folder)
            ctx.notes["budget_rounds"] = self._annotated(_records(folder, "round", start=1))
        return apply_masks(model, masks_from_state_dict(state))


@RUNNERS.register("quantize")
class QuantizeRunner(StageRunner):
    """k-means weight sharing per layer (pruned zeros stay zero) and centroid fine-tuning."""

    hp: QuantizeStage

    def run(self, model, ctx, folder):
        bits = self._bits(model, ctx)
        ctx.notes["bits"] = bits
        lams = self.hp.lam if isinstance(self.hp.lam, list) else [self.hp.lam]
        lam, tuned = self._search_lam(model, ctx, folder, bits, lams) if len(lams) > 1 else (lams[0], None)
        ctx.notes["lam"] = lam
        if tuned is not None:  # the rounding starts from the trial's float weights (changed by qat)
            _restore_floats(model, tuned)
        else:
            self._qat(model, bits, lam, ctx, None if folder is None else folder / "qat")
        self._share(model, bits, lam, ctx)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "bits.json").write_text(json.dumps(bits))
            (folder / "lam.json").write_text(json.dumps(lam))
        if tuned is not None:  # the search already fine-tuned this rate from the same start: keep its weights
            model.load_state_dict(tuned)
        else:
            _retrain(model, ctx, self.hp.finetune, None if folder is None else folder / "finetune",
                     "centroid fine-tune")
        return model

    def _search_lam(self, model, ctx, folder, bits: dict[str, int],
                    lams: list[float]) -> tuple[float, dict | None]:
        """The first ``lam`` (most aggressive first) whose fine-tuned model keeps the validation accuracy within
        the budget; the last one if none does. Each tried value is recorded, so a rerun does not repeat it.

        Returns:
            ``(lam, state)``: ``state`` is the chosen trial's fine-tuned state dict when this call trained it,
            None when its record came from an earlier run.
        """
        tried, trial = [], None
        for i, lam in enumerate(lams):
            trial_dir = None if folder is None else folder / f"lam{i}"
            record = _read_record(trial_dir)
            trial = None
            if record is None:
                trial = copy.deepcopy(model)
                self._qat(trial, bits, lam, ctx, None if trial_dir is None else trial_dir / "qat")
                self._share(trial, bits, lam, ctx)
                _retrain(trial, ctx, self.hp.finetune, trial_dir, f"ecsq lam {lam:g}")
                record = {"lam": lam, **ctx.budget_check(trial, self.hp.accuracy_budget, self.hp.confidence)}
                if trial_dir is not None:
                    trial_dir.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(trial_dir / "record.json", json.dumps(record, indent=2) + "\n")
            tried.append(record)
            if record["within"]:
                break
        ctx.notes["lam_search"] = tried
        return tried[-1]["lam"], None if trial is None else trial.state_dict()

    def _bits(self, model, ctx) -> dict[str, int]:
        if self.hp.method != "sensitivity":
            bits = {n: int(b) for n, b in _targets(model, self.hp.bits, 8).items()}
        else:
            from netpress.pipeline.search import sensitive_bits

            bits = sensitive_bits(model, ctx.data, self.hp)
        weights = plain_state_dict(model)
        return {n: _fit_bits(b, int((weights[n] != 0).sum())) for n, b in bits.items()}

    def _qat(self, model, bits: dict[str, int], lam: float, ctx, folder: Path | None) -> None:
        """Quantization-aware training at ``lam`` (``qat`` settings), leaving float weights for the rounding."""
        if not self.hp.qat:
            return
        from netpress.data.base import iterations_per_epoch
        from netpress.quantize.ecsq_qat import RefitLevels, ecsq_qat, finish_qat

        ecsq_qat(model, bits, lam, names=list(bits), relative=True)
        _retrain(model, ctx, self.hp.qat, folder, f"ecsq qat lam {lam:g}",
                 lambda hp: [RefitLevels(iterations_per_epoch(len(ctx.data.train), hp.batch_size))])
        finish_qat(model)

    def _share(self, model, bits: dict[str, int], lam: float, ctx) -> None:
        from netpress.prune import strip
        from netpress.quantize import UniformSpec, quantize_weights, share_weights

        strip(model)
        if self.hp.method == "uniform":  # per-channel affine codes at each tensor's bits
            specs = {n: UniformSpec(bits=b, granularity="channel") for n, b in bits.items()}
            quantize_weights(model, specs, names=list(bits))
        elif self.hp.method == "ecsq" and self.hp.calibration:
            _calibrated_ecsq(model, bits, lam, ctx.data.train, self.hp.calibration)
        elif self.hp.method == "ecsq":  # the rate weight relative to each tensor's variance
            from netpress.quantize.ecsq import ecsq_weights

            ecsq_weights(model, bits, lam, names=list(bits), relative=True)
        else:
            share_weights(model, bits=bits, init=self.hp.init)
        if self.hp.biases:
            quantize_weights(model, {n: _one_scale(self.hp.biases, size) for n, size in _biases(model, bits).items()})

    def rebuild(self, model, state, folder, ctx):
        bits = json.loads((folder / "bits.json").read_text())
        lam_file = folder / "lam.json"
        lam = json.loads(lam_file.read_text()) if lam_file.exists() else 0.0
        ctx.notes["bits"], ctx.notes["lam"] = bits, lam
        if isinstance(self.hp.lam, list):
            ctx.notes["lam_search"] = _records(folder, "lam", start=0)
        _restore_floats(model, state)
        self._share(model, bits, lam, ctx)
        return model


@torch.no_grad()
def _restore_floats(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy the float weights under ``state``'s quantizers (``<module>.parametrizations.<attr>.original``) into
    ``model``, parametrized or not: the values a deterministic rounding starts from."""
    from torch.nn.utils import parametrize

    for key, value in state.items():
        if not key.endswith(".original") or ".parametrizations." not in key:
            continue
        module_name, attr = key[: -len(".original")].rsplit(".parametrizations.", 1)
        module = model.get_submodule(module_name)
        target = (module.parametrizations[attr].original if parametrize.is_parametrized(module, attr)
                  else getattr(module, attr))
        target.copy_(value)


def _calibrated_ecsq(model: nn.Module, bits: dict[str, int], lam: float, train_data, examples: int) -> None:
    """ECSQ levels rounded with GPTQ error feedback from ``examples`` training inputs (layer by layer, each layer
    calibrated on the already quantized ones), left as trainable codebooks for the centroid fine-tune."""
    from netpress.calibrate import oneshot
    from netpress.quantize.activations import calibration_inputs
    from netpress.quantize.codebook import trainable_codebooks
    from netpress.quantize.gptq import GPTQHparams

    hps = {name: GPTQHparams(bits=b, method="ecsq", lam=lam) for name, b in bits.items()}
    oneshot(model, list(calibration_inputs(train_data, examples)), quantize=hps, progress=False)
    del model.netpress_oneshot  # the one-shot report; the pipeline reports on its own
    trainable_codebooks(model, list(bits))


def _one_scale(bits: int, size: int):
    """Uniform codes with one scale and zero point for the whole 1-D tensor (a single group: stored as an affine
    pair, not a table of all ``2**bits`` levels)."""
    from netpress.quantize import UniformSpec

    return UniformSpec(bits=bits, granularity="group", axis=0, group_size=size)


def _biases(model: nn.Module, weight_names) -> dict[str, int]:
    """``{plain name: size}`` of the biases of the modules owning ``weight_names``."""
    state = plain_state_dict(model)
    return {b: state[b].numel() for b in (n.rpartition(".")[0] + ".bias" for n in weight_names) if b in state}


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
        from netpress.quantize import round_codebooks

        book_dtype = self.hp.codebook_dtype
        if book_dtype == "float16":  # codebooks become float16-exact; affine scales stay exact ('auto')
            round_codebooks(model, torch.float16)
            book_dtype = "auto"
        if ctx.out is not None:
            save(model, ctx.out, coder=self.hp.coder, recipe=ctx.recipe, metrics=ctx.metrics,
                 codebook_dtype=book_dtype)
        return model
