"""Training several same-shape models at once (lottery replicates and controls, sweep seeds) with stacked
parameters: one optimizer step, one backward pass, and one evaluation pass per step for all of them.

Each model keeps its own data order (its ``order_seed``), its own masks and its own early-stopping bookkeeping,
so the results equal training the models one by one with :func:`netpress.train.train`, up to float
reassociation (tested with ``allclose`` on the weights).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torch.func import functional_call, vmap

from netpress.data.base import DataSplits, TensorData, epoch_order, iterations_per_epoch, to_tensor_data
from netpress.errors import ConfigError, DataError
from netpress.fileio import atomic_torch_save
from netpress.train.evaluate import resolve_device
from netpress.train.hparams import TrainingHparams
from netpress.train.schedule import lr_multiplier
from netpress.train.trainer import CHECKPOINT, TrainingDiverged, TrainResult, _progress, make_optimizer
from netpress.units import Steps

STRATEGIES = ("auto", "vmap", "loop")
_PER_MODEL = ("seed", "data_order_seed")  # the only settings batched models may differ in


def train_batched(
    models: list[nn.Module],
    data: DataSplits,
    hparams: list[TrainingHparams],
    *,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = "auto",
    snapshot_at: Iterable[str | Steps] = (),
    start_iteration: int = 0,
    strategy: str = "auto",
    progress: bool | None = None,
    desc: str = "train batched",
) -> list[TrainResult]:
    """Train ``models`` in place, together; model i as ``train(models[i], data, hparams[i])`` would.

    Args:
        models: same-architecture classifiers (same parameter and mask names and shapes; masked ones may hold
            different masks); no batch-norm running statistics, no random layers.
        data: splits shared by all models; the training set is held in memory.
        hparams: one per model, equal except ``seed`` / ``data_order_seed`` (each model's data order).
        checkpoint_dir: if given, a joint checkpoint is written at each evaluation and resumed.
        device: ``'auto'``, ``'cpu'``, ``'cuda'``.
        snapshot_at: points whose weights are kept in each result's ``snapshots`` (rewinding).
        start_iteration: the runs continue at this iteration of the lr schedule (see :func:`train`).
        strategy: ``vmap`` (``torch.func.vmap`` over stacked parameters: batched kernels, best on GPUs),
            ``loop`` (per-model forward on views of the stacked parameters, one backward and optimizer step:
            best on CPUs, where these small matmuls are compute-bound) or ``auto`` (vmap on CUDA, else loop).
        progress: progress bar (default: only on a terminal).
        desc: progress-bar label.

    Returns:
        One :class:`TrainResult` per model, in order.

    Raises:
        ConfigError: models or hparams that cannot be batched (before any work).

    Example:
        >>> nets = [build_model("lenet300", (1, 28, 28), 10, seed=s) for s in range(5)]
        >>> results = train_batched(nets, data, [hp.replace(seed=s) for s in range(5)])
    """
    _check(models, hparams, strategy)
    if len(data.train) == 0:
        raise DataError("the training set is empty")
    dev = resolve_device(device)
    hp = hparams[0]
    train_set = to_tensor_data(data.train)
    ipe = iterations_per_epoch(len(train_set), hp.batch_size)
    total = Steps.parse(hp.steps).iterations(ipe)
    eval_every = Steps.parse(hp.eval_every).iterations(ipe)
    snap_its = sorted({Steps.parse(s).iterations(ipe) for s in snapshot_at})
    stack = _Stack(models, dev, strategy)
    optimizer = make_optimizer(stack.params.values(), hp)
    factor = lr_multiplier(hp, ipe, length=start_iteration + total)
    state = _BState(0, [[] for _ in models], [{} for _ in models], [math.nan] * len(models))
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = _load(ckpt, stack, optimizer, dev)
    resumed_from = state.iteration
    x_all, y_all = train_set.x.to(dev), train_set.y.to(dev)
    bar = _progress(total, state.iteration, desc, progress)
    while state.iteration < total:
        epoch, offset = divmod(state.iteration, ipe)
        orders = torch.stack([epoch_order(len(train_set), h.order_seed, epoch) for h in hparams]).to(dev)
        for b in range(offset, ipe):
            it = state.iteration
            if it in snap_its and it not in state.snapshots[0]:
                for r, snap in enumerate(stack.plain_states(models)):
                    state.snapshots[r][it] = snap
            for g in optimizer.param_groups:
                g["lr"] = hp.lr * factor(start_iteration + it)
            idx = orders[:, b * hp.batch_size:(b + 1) * hp.batch_size]
            losses = stack.losses(x_all[idx], y_all[idx])
            values = losses.detach().cpu().tolist()
            bad = [r for r, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"{desc}: model {bad[0]}'s loss is {values[bad[0]]} at iteration {it} "
                                       f"(lr {optimizer.param_groups[0]['lr']:g}); lower the lr or add a warm-up")
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # model r's gradient is that of its own mean loss
            optimizer.step()
            state.iteration, state.train_loss = it + 1, values
            bar.update(1)
            if state.iteration % eval_every == 0 or state.iteration == total:
                _record(state, stack, data, dev)
                if ckpt is not None:
                    _save(ckpt, state, stack, optimizer)
            if state.iteration >= total:
                break
    bar.close()
    if not state.metrics[0]:
        _record(state, stack, data, dev)
    stack.write_back(models)
    for it in snap_its:
        if it >= total:
            for r, snap in enumerate(stack.plain_states(models)):
                state.snapshots[r].setdefault(it, snap)
    return [_result(state, r, resumed_from) for r in range(len(models))]


def _check(models: list[nn.Module], hparams: list[TrainingHparams], strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not models or len(models) != len(hparams):
        raise ConfigError(f"train_batched needs one hparams per model, got {len(models)} models, {len(hparams)} hparams")
    shapes = [{n: tuple(t.shape) for n, t in [*m.named_parameters(), *m.named_buffers()]} for m in models]
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            diff = sorted(set(s.items()) ^ set(shapes[0].items()))[0][0]
            raise ConfigError(f"model {i} differs from model 0 in {diff!r}; batched models must share a shape")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules()):
        raise ConfigError("train_batched does not support batch-norm layers (their running statistics); train one by one")
    base = {k: v for k, v in dataclasses.asdict(hparams[0]).items() if k not in _PER_MODEL}
    for i, h in enumerate(hparams[1:], 1):
        diff = [k for k, v in dataclasses.asdict(h).items() if k not in _PER_MODEL and base[k] != v]
        if diff:
            raise ConfigError(f"hparams {i} differ from hparams 0 in {diff[0]!r}; only {', '.join(_PER_MODEL)} may differ")


class _Stack:
    """The models' parameters and buffers (masks) stacked along a new first dimension."""

    def __init__(self, models: list[nn.Module], dev: torch.device, strategy: str):
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(dev).requires_grad_()
                       for n, _ in models[0].named_parameters()}
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(dev)
                        for n, _ in models[0].named_buffers()}
        self.base = copy.deepcopy(models[0]).to(dev).train()
        self.vmap = strategy == "vmap" or (strategy == "auto" and dev.type == "cuda")
        self.n = len(models)

    def _one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def logits(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """``[R, B, classes]``; ``x`` is ``[R, B, ...]``, or ``[B, ...]`` for every model when ``shared``."""
        if self.vmap:
            return vmap(self._one, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)
        p = {k: v.unbind(0) for k, v in self.params.items()}  # views; their backward is one stack
        b = {k: v.unbind(0) for k, v in self.buffers.items()}
        return torch.stack([self._one({k: v[r] for k, v in p.items()}, {k: v[r] for k, v in b.items()},
                                      x if shared else x[r]) for r in range(self.n)])

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        ce = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
        return ce.view(self.n, -1).mean(1)

    @torch.no_grad()
    def write_back(self, models: list[nn.Module]) -> None:
        for r, m in enumerate(models):
            for n, t in m.named_parameters():
                t.copy_(self.params[n][r])

    def plain_states(self, models: list[nn.Module]) -> list[dict[str, torch.Tensor]]:
        self.write_back(models)
        return [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in models]


@dataclasses.dataclass
class _BState:
    iteration: int
    metrics: list[list[dict]]
    snapshots: list[dict]
    train_loss: list[float]


@torch.no_grad()
def _evaluate(stack: _Stack, dataset, dev: torch.device, batch_size: int = 1000) -> tuple[list[float], list[float]]:
    """Per-model mean cross-entropy and accuracy on ``dataset`` (one pass over the data for all models)."""
    data = to_tensor_data(dataset)
    loss, correct = torch.zeros(stack.n, device=dev, dtype=torch.float64), torch.zeros(stack.n, device=dev)
    for i in range(0, len(data), batch_size):
        x, y = data.x[i:i + batch_size].to(dev), data.y[i:i + batch_size].to(dev)
        out = stack.logits(x, shared=True)
        ce = nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(stack.n), reduction="none").view(stack.n, -1)
        loss += ce.sum(1, dtype=torch.float64)
        correct += (out.argmax(2) == y).sum(1)
    n = max(len(data), 1)
    return (loss / n).tolist(), (correct / n).tolist()


def _record(state: _BState, stack: _Stack, data: DataSplits, dev: torch.device) -> None:
    test_loss, test_acc = _evaluate(stack, data.test, dev)
    has_val = data.val is not None and len(data.val)
    val_loss, val_acc = _evaluate(stack, data.val, dev) if has_val else (test_loss, test_acc)
    for r in range(stack.n):
        state.metrics[r].append({"iteration": state.iteration, "train_loss": state.train_loss[r],
                                 "val_loss": val_loss[r], "val_accuracy": val_acc[r],
                                 "test_loss": test_loss[r], "test_accuracy": test_acc[r]})


def _result(state: _BState, r: int, resumed_from: int) -> TrainResult:
    metrics = state.metrics[r]
    best = min(metrics, key=lambda m: (m["val_loss"], m["iteration"]))
    return TrainResult(metrics=metrics, best_iteration=best["iteration"], best_test_accuracy=best["test_accuracy"],
                       final_test_accuracy=metrics[-1]["test_accuracy"], snapshots=state.snapshots[r],
                       iterations=state.iteration, resumed_from=resumed_from)


def _save(path: Path, state: _BState, stack: _Stack, optimizer: torch.optim.Optimizer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"iteration": state.iteration, "metrics": state.metrics, "snapshots": state.snapshots,
                       "train_loss": state.train_loss, "params": {k: v.detach() for k, v in stack.params.items()},
                       "optimizer": optimizer.state_dict()}, path)


def _load(path: Path, stack: _Stack, optimizer: torch.optim.Optimizer, dev: torch.device) -> _BState:
    ck = torch.load(path, map_location=dev, weights_only=True)
    with torch.no_grad():
        for k, v in ck["params"].items():
            stack.params[k].copy_(v)
    optimizer.load_state_dict(ck["optimizer"])
    return _BState(ck["iteration"], ck["metrics"], ck["snapshots"], ck["train_loss"])
