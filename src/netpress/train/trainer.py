"""The training loop: deterministic, checkpointed, resumable, with early-stopping bookkeeping.

A run killed at any point and restarted with the same ``checkpoint_dir`` ends with bit-identical weights,
because the data order of each epoch and the lr are pure functions of (seed, iteration).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import sys
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
from torch import nn

from netpress.errors import DataError, NetpressError
from netpress.data.base import Batch, DataSplits, batches, epoch_order, iterations_per_epoch
from netpress.fileio import atomic_torch_save
from netpress.train.evaluate import evaluate, resolve_device
from netpress.train.hparams import TrainingHparams
from netpress.train.schedule import lr_multiplier
from netpress.units import Steps

LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]


class CheckpointError(NetpressError):
    """A checkpoint to resume from is corrupt or belongs to another model."""


class TrainingDiverged(NetpressError):
    """The training loss became NaN or infinite."""

CHECKPOINT = "checkpoint.pt"
LOSS_CHECK_EVERY = 50  # iterations between divergence checks (one host sync each)


class Callback(Protocol):
    """Hook into training. ``on_step_end`` runs after every optimizer step; keep it a function of ``iteration``
    (not of hidden state) so that resumed runs behave exactly like uninterrupted ones. A callback whose
    ``stop_training`` attribute is true after ``on_step_end`` ends the run at that iteration (evaluated, and
    checkpointed when checkpointing)."""

    def on_step_end(self, iteration: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None: ...


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        metrics: one dict per evaluation: iteration, train_loss, val_loss, val_accuracy, test_accuracy.
        best_iteration: iteration of minimum validation loss (the early-stopping iteration).
        best_test_accuracy: test accuracy at ``best_iteration``.
        final_test_accuracy: test accuracy at the end.
        snapshots: state dicts saved at the requested iterations (for rewinding), keyed by iteration.
        iterations: total iterations trained.
        resumed_from: iteration a checkpoint was resumed from (0 if fresh).
    """

    metrics: list[dict]
    best_iteration: int
    best_test_accuracy: float
    final_test_accuracy: float
    snapshots: dict[int, dict[str, torch.Tensor]]
    iterations: int
    resumed_from: int = 0

    def summary(self) -> dict:
        last = self.metrics[-1] if self.metrics else {}
        return {
            "iterations": self.iterations,
            "test_accuracy": self.final_test_accuracy,
            "val_accuracy": last.get("val_accuracy"),
            "early_stop_iteration": self.best_iteration,
            "early_stop_test_accuracy": self.best_test_accuracy,
        }


def make_optimizer(params: Iterable[nn.Parameter], hp: TrainingHparams) -> torch.optim.Optimizer:
    """The optimizer of ``hp``, fused (one kernel for all tensors) when every parameter is on CPU or CUDA: on
    small models the per-tensor optimizer loop costs as much as the forward pass."""
    params = [p for p in params if p.requires_grad]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, fused=fused)
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)


def cross_entropy(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, batch.y.to(outputs.device))


def train(
    model: nn.Module,
    data: DataSplits,
    hparams: TrainingHparams,
    *,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = "auto",
    loss_fn: LossFn = cross_entropy,
    callbacks: Iterable[Callback] = (),
    snapshot_at: Iterable[str | Steps] = (),
    start_iteration: int = 0,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place.

    Args:
        model: any nn.Module classifier (masked/parametrized modules included).
        data: train/val/test splits; ``val`` may be None (then test loss picks the early-stopping iteration).
        hparams: optimiser, lr schedule, length, seeds.
        checkpoint_dir: if given, a checkpoint is written at each evaluation and an existing one is resumed.
        device: ``'auto'``, ``'cpu'``, ``'cuda'``.
        loss_fn: ``f(outputs, batch) -> loss``; default cross-entropy (distillation swaps this).
        callbacks: objects with ``on_step_end(iteration, model, optimizer)``; one with a true ``stop_training``
            attribute ends training after that step (e.g. :class:`netpress.lottery.EarlyBird` with ``stop=True``).
        snapshot_at: points (``'0it'``, ``'500it'``, ``'2ep'``) whose weights are kept in ``result.snapshots``.
        start_iteration: the run continues an (imagined) run at this iteration: ``hparams.steps`` more iterations
            are trained and the lr schedule spans ``start_iteration + steps`` (rewinding to iteration k).
        progress: show a progress bar; default only when stderr is a terminal.
        desc: progress-bar label.

    Returns:
        :class:`TrainResult`.

    Example:
        >>> result = train(model, load_data("synthetic"), TrainingHparams(steps="2ep"))
        >>> result.final_test_accuracy
    """
    if len(data.train) == 0:
        raise DataError("the training set is empty")
    dev = resolve_device(device)
    model.to(dev)
    ipe = iterations_per_epoch(len(data.train), hparams.batch_size)
    total = Steps.parse(hparams.steps).iterations(ipe)
    eval_every = Steps.parse(hparams.eval_every).iterations(ipe)
    snap_its = sorted({Steps.parse(s).iterations(ipe) for s in snapshot_at})
    optimizer = make_optimizer(model.parameters(), hparams)
    factor = lr_multiplier(hparams, ipe, length=start_iteration + total)
    callbacks = list(callbacks)

    state = _State(iteration=0, metrics=[], snapshots={})
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, model, optimizer, dev)
    else:
        torch.manual_seed(hparams.order_seed)
    resumed_from = state.iteration

    bar = _progress(total, state.iteration, desc, progress)
    model.train()
    losses: list[torch.Tensor] = []
    stop = False
    while state.iteration < total and not stop:
        epoch, offset = divmod(state.iteration, ipe)
        order = epoch_order(len(data.train), hparams.order_seed, epoch)
        for batch in batches(data.train, hparams.batch_size, order, start=offset):
            it = state.iteration
            if it in snap_its and it not in state.snapshots:
                state.snapshots[it] = _cpu_state(model)
            for g in optimizer.param_groups:
                g["lr"] = hparams.lr * factor(start_iteration + it)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch.x.to(dev)), batch)
            losses.append(loss.detach())  # checked in blocks: no device sync per step
            loss.backward()
            optimizer.step()
            for cb in callbacks:
                cb.on_step_end(it + 1, model, optimizer)
            stop = any(getattr(cb, "stop_training", False) for cb in callbacks)
            state.iteration = it + 1
            bar.update(1)
            evaluate_now = state.iteration % eval_every == 0 or state.iteration == total or stop
            if evaluate_now or len(losses) >= LOSS_CHECK_EVERY:
                state.train_loss = _check_losses(losses, state.iteration, desc, optimizer)
            if evaluate_now:
                _record(state, model, data, dev)
                bar.set_postfix(test_acc=f"{state.metrics[-1]['test_accuracy']:.4f}")
                if ckpt is not None:
                    _save_checkpoint(ckpt, state, model, optimizer)
            if state.iteration >= total or stop:
                break
    bar.close()
    if not state.metrics:  # zero-length continuation of a finished run
        _record(state, model, data, dev)
    for it in snap_its:
        if it >= total:  # a snapshot at (or past) the very end is the final weights
            state.snapshots.setdefault(it, _cpu_state(model))
    return _result(state, resumed_from)


def _check_losses(losses: list[torch.Tensor], iteration: int, desc: str, optimizer: torch.optim.Optimizer) -> float:
    """Raise :class:`TrainingDiverged` at the first non-finite loss of the block ending at ``iteration``; return
    the last loss and empty the block."""
    values = torch.stack(losses).tolist()
    losses.clear()
    for i, value in enumerate(values):
        if not math.isfinite(value):
            it = iteration - len(values) + i
            raise TrainingDiverged(f"{desc}: loss is {value} at iteration {it} (lr "
                                   f"{optimizer.param_groups[0]['lr']:g}); lower the lr or add a warm-up")
    return values[-1]


@dataclasses.dataclass
class _State:
    iteration: int
    metrics: list
    snapshots: dict
    train_loss: float = float("nan")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _record(state: _State, model: nn.Module, data: DataSplits, dev: torch.device) -> None:
    test = evaluate(model, data.test, device=dev)
    val = evaluate(model, data.val, device=dev) if data.val is not None and len(data.val) else None
    model.train()
    state.metrics.append({
        "iteration": state.iteration,
        "train_loss": state.train_loss,
        "val_loss": val.loss if val else test.loss,
        "val_accuracy": val.accuracy if val else test.accuracy,
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
    })


def _result(state: _State, resumed_from: int) -> TrainResult:
    best = min(state.metrics, key=lambda m: (m["val_loss"], m["iteration"]))
    return TrainResult(
        metrics=state.metrics,
        best_iteration=best["iteration"],
        best_test_accuracy=best["test_accuracy"],
        final_test_accuracy=state.metrics[-1]["test_accuracy"],
        snapshots=state.snapshots,
        iterations=state.iteration,
        resumed_from=resumed_from,
    )


def _save_checkpoint(path: Path, state: _State, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({
        "iteration": state.iteration,
        "metrics": state.metrics,
        "snapshots": state.snapshots,
        "train_loss": state.train_loss,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
    }, path)


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, dev: torch.device) -> _State:
    """Resume state; a checkpoint that is not one (garbage, a pickle, another model's) is a one-line error."""
    try:
        ck = torch.load(path, map_location=dev, weights_only=True)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"].cpu())
        return _State(int(ck["iteration"]), list(ck["metrics"]), dict(ck["snapshots"]), ck.get("train_loss", float("nan")))
    except Exception as exc:  # torch.load on a hostile file can raise nearly anything
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"{path} is not a usable checkpoint ({reason})") from None


class _NullBar:
    def update(self, n): ...
    def set_postfix(self, **kw): ...
    def close(self): ...


def _progress(total: int, initial: int, desc: str, show: bool | None):
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="it", leave=False, dynamic_ncols=True)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy (keeps parametrizations, masks and ``netpress_spec``)."""
    return copy.deepcopy(model)
