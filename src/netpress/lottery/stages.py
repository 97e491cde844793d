"""Idempotent stages: a folder per level/branch, a done-marker written last, resumable training inside.

A stage folder holds the trainer's ``checkpoint.pt`` while it runs, then ``final.pt`` (plain-named weights,
masks and rewind snapshots) and finally ``result.json``. A stage whose ``result.json`` exists is never run again;
a stage killed before that resumes from its checkpoint and ends with the same numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from netpress.data import DataSplits
from netpress.fileio import atomic_torch_save, atomic_write_text
from netpress.prune import apply_masks, get_masks, load_plain_state_dict, plain_state_dict
from netpress.train import TrainingHparams, TrainResult, train

DONE = "result.json"
FINAL = "final.pt"
TIMING = "timing.json"  # wall seconds of the training call (since any resume)


def atomic_json(obj, path: Path) -> None:
    """Write JSON to ``path`` crash-safely."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")


atomic_torch = atomic_torch_save


def done(folder: Path) -> dict | None:
    """The stage's recorded result, or None while it is not finished."""
    marker = folder / DONE
    return json.loads(marker.read_text()) if marker.exists() else None


def train_stage(folder: Path, model: nn.Module, data: DataSplits, hp: TrainingHparams, *, start_iteration: int = 0,
                snapshot_at: Iterable[str] = (), desc: str = "train", device="auto", progress=None,
                callbacks: Iterable = (), extra: dict | None = None, resumable: bool = True,
                after: Callable[[], dict] | None = None) -> dict:
    """Train ``model`` as the stage in ``folder`` unless that stage is already done.

    Args:
        folder: the stage folder (created).
        model: the starting network (masks and weights set); trained in place when the stage runs.
        data, hp: what to train on and how.
        start_iteration: where the lr schedule starts (iteration rewinding replays from k).
        snapshot_at: points whose weights are kept for rewinding.
        desc: progress label.
        device, progress, callbacks: passed to :func:`netpress.train.train`.
        extra: facts recorded with the result (sparsity, seeds, ...).
        resumable: resume a killed run from its checkpoint; False restarts it from ``model`` (for callbacks
            whose state is not checkpointed, e.g. :class:`~netpress.lottery.EarlyBird`).
        after: called after training; its facts are recorded with the result too (and may write files into
            ``folder``: the result is written after it).

    Returns:
        The result dict (training summary, ``metrics`` curve, ``extra``).

    Example:
        >>> train_stage(Path("exp/level_00/ticket"), net, splits, hp, snapshot_at=["0it"])["test_accuracy"]
    """
    found = done(folder)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    if not resumable:
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    start = time.perf_counter()
    result = train(model, data, hp, checkpoint_dir=folder, device=device, progress=progress, desc=desc,
                   snapshot_at=list(snapshot_at), start_iteration=start_iteration, callbacks=list(callbacks))
    seconds = time.perf_counter() - start
    extra = {**(extra or {}), **(after() if after else {})}
    return _finish(folder, model, result, start_iteration, extra, {"seconds": seconds})


def _finish(folder: Path, model: nn.Module, result: TrainResult, start_iteration: int, extra: dict | None,
            timing: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_json(timing, folder / TIMING)  # wall time apart from the result, which stays a function of the settings
    snapshots = {int(k): {n: t.cpu() for n, t in v.items()} for k, v in result.snapshots.items()}
    atomic_torch({"state": _cpu(plain_state_dict(model)), "masks": _cpu(get_masks(model)), "snapshots": snapshots},
                 folder / FINAL)
    summary = {**result.summary(), "start_iteration": start_iteration, "metrics": result.metrics, **(extra or {})}
    atomic_json(summary, folder / DONE)  # written last: marks the stage done
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return summary


@dataclasses.dataclass
class StageJob:
    """One stage to train: its folder, starting network, training settings and recorded facts."""

    folder: Path
    model: nn.Module
    hp: TrainingHparams
    extra: dict | None = None


def train_stages_batched(jobs: list[StageJob], data: DataSplits, *, work: Path, start_iteration: int = 0,
                         snapshot_at: Iterable[str] = (), device="auto", progress=None, desc: str = "train") -> list[dict]:
    """Train the unfinished stages of ``jobs`` together (:func:`netpress.train.batched.train_batched`), then
    record each exactly as :func:`train_stage` would.

    Args:
        jobs: same-shape stages whose settings differ only in seeds.
        data: the splits.
        work: folder for the joint checkpoint (named by the set of unfinished stages, so a resumed call with the
            same stages continues it).
        start_iteration, snapshot_at, device, progress, desc: as for :func:`train_stage`.

    Returns:
        Each job's result dict, in order.

    Example:
        >>> train_stages_batched([StageJob(f, m, hp.replace(seed=s)) for ...], splits, work=exp / "batched")
    """
    todo = [j for j in jobs if done(j.folder) is None]
    if todo:
        from netpress.train.batched import train_batched

        key = hashlib.sha256("|".join(str(j.folder) for j in todo).encode()).hexdigest()[:12]
        ckpt = work / key
        start = time.perf_counter()
        results = train_batched([j.model for j in todo], data, [j.hp for j in todo], checkpoint_dir=ckpt,
                                device=device, snapshot_at=list(snapshot_at), start_iteration=start_iteration,
                                progress=progress, desc=f"{desc} x{len(todo)}")
        share = (time.perf_counter() - start) / len(todo)  # wall time of this call (since any resume), shared
        for j, r in zip(todo, results):
            _finish(j.folder, j.model, r, start_iteration, j.extra, {"seconds": share, "batched": len(todo)})
        shutil.rmtree(ckpt, ignore_errors=True)
    return [done(j.folder) for j in jobs]


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def load_stage(folder: Path) -> dict:
    """What a finished stage saved.

    Args:
        folder: the stage folder.

    Returns:
        ``{"state": plain-named final weights, "masks": {name: mask}, "snapshots": {iteration: weights}}``.

    Example:
        >>> load_stage(Path("netpress_runs/lottery_x/replicate_0/level_03/ticket"))["masks"].keys()
    """
    return torch.load(folder / FINAL, map_location="cpu", weights_only=True)


def set_weights(model: nn.Module, masks: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> nn.Module:
    """Apply ``masks`` (if any) then load the plain-named ``state``: survivors take their values from ``state``,
    pruned positions stay zero (this is rewinding).

    Args:
        model: the network (changed in place).
        masks: ``{plain_name: 0/1 mask}``; empty leaves the model unmasked.
        state: plain-named weights for every tensor of the model.

    Returns:
        ``model``.

    Example:
        >>> set_weights(net, level_mask, torch.load("replicate_0/init.pt"))  # a ticket rewound to init
    """
    if masks:
        apply_masks(model, masks)
    return load_plain_state_dict(model, state)


def stage_seconds(folder: Path) -> float | None:
    """Wall seconds a finished stage trained (since any resume), or None when it recorded none."""
    path = folder / TIMING
    return float(json.loads(path.read_text())["seconds"]) if path.exists() else None
