"""``compress``: run a recipe's stages on any model, each stage idempotent and resumable, measuring accuracy and
real file bytes after every stage.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from netpress.data import DataSplits, to_tensor_data
from netpress.errors import ConfigError
from netpress.fileio import atomic_torch_save, atomic_write_text
from netpress.pipeline.recipe import Recipe, check_layer_keys, load_recipe
from netpress.prune.masks import plain_state_dict, prunable_tensors, sparsity
from netpress.pipeline.stages import RUNNERS, Context
from netpress.train import TrainingHparams, correctness, evaluate


@dataclasses.dataclass
class CompressResult:
    """What :func:`compress` produced.

    Attributes:
        model: the compressed model (masks / shared weights attached; ``netpress.load(out)`` gives the same outputs).
        rows: one dict per stage (``stage``, ``test_accuracy``, ``bytes``, ``ratio``, ``sparsity``, ``seconds``),
            the first being the dense input.
        out: the ``.netp`` file, if the recipe encodes and ``out`` was given.
        layers: per-layer table of the encoded file (Deep Compression Tables 2-3), if encoded.
        folder: the working folder (stage states), if any.
        notes: per-stage facts (pruning targets, bits per layer).
        snapshots: the largest layer's weights after each stage (for the weight-distribution plot).
        final_weights: every Linear/Conv weight at the end, by plain name.
        report: the Markdown report, if one was written.
    """

    model: nn.Module
    rows: list[dict]
    out: Path | None
    layers: list[dict]
    folder: Path | None
    notes: dict
    snapshots: dict[str, torch.Tensor]
    final_weights: dict[str, torch.Tensor]
    report: Path | None = None

    def summary(self) -> dict:
        first, last = self.rows[0], self.rows[-1]
        return {"dense_accuracy": first["test_accuracy"], "test_accuracy": last["test_accuracy"],
                "dense_bytes": first["bytes"], "bytes": last["bytes"], "ratio": last["ratio"],
                "sparsity": last["sparsity"], "out": None if self.out is None else str(self.out)}


def compress(
    model: nn.Module,
    train_data: Dataset | DataSplits,
    val_data: Dataset | None = None,
    recipe: str | Path | Recipe = "deep-compression",
    *,
    test_data: Dataset | None = None,
    train_hp: TrainingHparams | None = None,
    out: str | Path | None = None,
    workdir: str | Path | None = None,
    report_dir: str | Path | None = None,
    title: str = "netpress compression report",
    device: str = "auto",
    progress: bool | None = None,
) -> CompressResult:
    """Compress ``model`` with a recipe (Deep Compression by default).

    Args:
        model: any trained classifier (changed in place).
        train_data: training Dataset (or a full :class:`DataSplits`, then ``val_data``/``test_data`` are ignored).
        val_data: validation Dataset (sensitivity scans, early stopping bookkeeping).
        recipe: a built-in recipe name, a YAML path, or a :class:`Recipe`.
        test_data: Dataset for the reported accuracies (default: ``val_data``).
        train_hp: base training settings that stage overrides (retrain, finetune) change.
        out: path of the ``.netp`` file the encode stage writes.
        workdir: folder for stage states; with it, a killed compression resumes where it stopped.
        report_dir: if given, ``report.md`` and PNG plots are written there.
        title: the report's title.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: progress bars (default: only on a terminal).

    Returns:
        :class:`CompressResult`.

    Example:
        >>> result = netpress.compress(model, train_set, val_set, "deep-compression", out="model.netp")
        >>> result.summary()["ratio"]
    """
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    check_layer_keys(recipe, model)
    data = _splits(model, train_data, val_data, test_data)
    folder = Path(workdir) if workdir is not None else None
    ctx = Context(data=data, train_hp=train_hp or TrainingHparams(), folder=folder, device=device, progress=progress,
                  teacher=copy.deepcopy(model).eval() if any(s.kind == "distill" for s in recipe.stages) else None,
                  out=None if out is None else Path(out), recipe=recipe.to_dict())
    if spends_budget(recipe):
        if data.val is None or not len(data.val):
            raise ConfigError(f"recipe {recipe.name} spends a validation-accuracy budget: give validation data")
        ctx.reference_correct = correctness(model, data.val)
        coarse = coarse_validation(recipe, len(data.val))
        if coarse:
            warnings.warn(coarse, stacklevel=2)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "recipe.json", json.dumps(recipe.to_dict(), indent=2) + "\n")
    rows = [_dense_row(model, data)]
    layer = _largest_layer(model)
    snapshots = {"dense": plain_state_dict(model)[layer]}
    for index, stage in enumerate(recipe.stages):
        runner = RUNNERS.get(stage.kind)(stage.hparams)
        rows.append(_run_stage(index, stage.kind, runner, model, ctx, rows[0]["bytes"]))
        if stage.kind in ("prune", "quantize", "lowrank"):
            snapshots[stage.kind] = plain_state_dict(model).get(layer, snapshots["dense"])
    layers = _layers(ctx.out) if ctx.out is not None and ctx.out.exists() else []
    weights = plain_state_dict(model)
    final = {n: weights[n] for n in prunable_tensors(model)}
    result = CompressResult(model, rows, ctx.out if layers else None, layers, folder, ctx.notes, snapshots, final)
    if report_dir is not None:
        from netpress.report.compression import write_report

        result.report = write_report(result, Path(report_dir), title, snapshots, layer)
    return result


def spends_budget(recipe: Recipe) -> bool:
    """Whether a stage decides by the validation accuracy against the model entering the pipeline."""
    return bool(_budget_stages(recipe))


def _budget_stages(recipe: Recipe) -> list:
    return [s for s in recipe.stages if (s.kind == "prune" and s.hparams.schedule == "budget")
            or (s.kind == "quantize" and isinstance(s.hparams.lam, list))]


def coarse_validation(recipe: Recipe, examples: int) -> str | None:
    """A one-line warning when one validation example is worth more than a budget some stage spends (then no
    single measurement can show that budget is kept; only rounds that changed nothing, pooled, can), else None.

    Example:
        >>> coarse_validation(load_recipe("budget"), 5000) is None
        True
    """
    budgets = [(s.kind, s.hparams.accuracy_budget) for s in _budget_stages(recipe)]
    if not budgets or examples <= 0:
        return None
    kind, budget = min(budgets, key=lambda kb: kb[1])
    if 1.0 / examples <= budget:
        return None
    return (f"{examples} validation examples: one example is {100 / examples:.2f} pt, more than the {kind} stage's "
            f"{100 * budget:.2f} pt budget; give more validation data for the budget to be measurable")


def _largest_layer(model: nn.Module) -> str:
    return max(prunable_tensors(model).items(), key=lambda kv: getattr(*kv[1]).numel())[0]


def _splits(model: nn.Module, train_data, val_data, test_data) -> DataSplits:
    if isinstance(train_data, DataSplits):
        return train_data
    if val_data is None and test_data is None:
        raise ConfigError("compress needs validation or test data to measure accuracy")
    train = to_tensor_data(train_data)
    test = to_tensor_data(test_data if test_data is not None else val_data)
    with torch.no_grad():
        classes = int(model.eval()(train.x[:2].to(next(model.parameters()).device)).shape[1])
    val = to_tensor_data(val_data) if val_data is not None else None
    return DataSplits(train, val, test, classes, tuple(train.x.shape[1:]))


def _run_stage(index: int, kind: str, runner, model: nn.Module, ctx: Context, dense_bytes: int) -> dict:
    folder = ctx.stage_dir(index, kind)
    done = None if folder is None else folder / "done.json"
    if done is not None and done.exists() and (kind != "encode" or ctx.out is None or ctx.out.exists()):
        state = torch.load(folder / "state.pt", weights_only=True)
        runner.rebuild(model, state, folder, ctx)
        model.load_state_dict(state)
        row = json.loads(done.read_text())
        _record(ctx, kind, row)
        return row
    start = time.perf_counter()
    runner.run(model, ctx, folder)
    row = _measure(kind, model, ctx, dense_bytes)
    row["seconds"] = round(time.perf_counter() - start, 1)
    _record(ctx, kind, row)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(model.state_dict(), folder / "state.pt")
        atomic_write_text(done, json.dumps(row, indent=2) + "\n")  # last: marks the stage done
    return row


def _record(ctx: Context, kind: str, row: dict) -> None:
    """Stage accuracies go into the .netp manifest; ``test_accuracy`` is the model's as it is saved."""
    ctx.metrics[f"{kind}_accuracy"] = row["test_accuracy"]
    if kind != "encode":
        ctx.metrics["test_accuracy"] = row["test_accuracy"]


def _dense_row(model: nn.Module, data: DataSplits) -> dict:
    n = sum(p.numel() for p in model.parameters())
    return {"stage": "dense", "test_accuracy": evaluate(model, data.test).accuracy, "bytes": 4 * n, "ratio": 1.0,
            "sparsity": sparsity(model), "seconds": 0.0}


def _measure(kind: str, model: nn.Module, ctx: Context, dense_bytes: int) -> dict:
    """Accuracy, and the bytes of a real ``.netp`` file of the model as it stands after the stage."""
    if kind == "encode" and ctx.out is not None:
        size = ctx.out.stat().st_size
    else:
        size = file_bytes(model, coder=FIXED_LENGTH if kind == "quantize" else "huffman")
    return {"stage": kind, "test_accuracy": evaluate(model, ctx.data.test).accuracy, "bytes": size,
            "ratio": dense_bytes / size, "sparsity": sparsity(model)}


FIXED_LENGTH = "packed"  # indices in fixed-length bits: Deep Compression's P+Q column, before Huffman


def file_bytes(model: nn.Module, coder: str) -> int:
    """Size of the ``.netp`` file ``model`` would be written as with ``coder``."""
    from netpress.encode import save

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.netp"
        save(model, path, coder=coder)
        return path.stat().st_size


def _layers(path: Path) -> list[dict]:
    from netpress.encode import read_manifest, summarize

    return summarize(read_manifest(path))["tensors"]


