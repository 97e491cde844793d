"""The layer-wise sequential loop (GPTQ/SparseGPT style), kept apart from the solvers.

A probe pass records the order layers run in and which layers read the same input tensor (e.g. a transformer's
query/key/value projections). Layers are then solved group by group, in execution order: for each group the
model is re-run on the calibration batches up to that group (hooks collect the statistics, the pass stops
there), the solver compresses the group's layers in place, and the statistics are dropped. Later groups thus
see the outputs of the already-compressed layers (sequential), for any ``nn.Module``, at the cost of about
``groups / 2`` full forward passes per batch; memory holds one group's statistics at a time.
``sequential=False`` captures every layer in one pass from the original model instead (faster, more memory).
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from torch import nn

from netpress.calibrate.inputs import call_model
from netpress.calibrate.stats import InputStats, capture, layer_input, supports
from netpress.modes import eval_mode

Solver = Callable[[str, nn.Module, "InputStats | None"], Any]


@torch.no_grad()
def execution_groups(model: nn.Module, batch: Any, modules: dict[str, nn.Module]) -> tuple[list[list[str]], list[str]]:
    """Group ``modules`` by execution order on one batch; consecutive layers fed the same tensor share a group.

    Returns:
        ``(groups, unseen)``: lists of names in run order, and the names never called on ``batch``.

    Example:
        >>> execution_groups(bert, batch, linears)[0][0]
        ['encoder.layer.0.attention.self.query', 'encoder.layer.0.attention.self.key', ...]
    """
    seen: dict[str, tuple] = {}

    def hook_for(name: str):
        def hook(_m, args, kwargs):
            x = layer_input(args, kwargs)
            seen.setdefault(name, (x.data_ptr(), tuple(x.shape), x.dtype))
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n), with_kwargs=True) for n, m in modules.items()]
    try:
        with eval_mode(model):
            call_model(model, batch)
    finally:
        for h in handles:
            h.remove()
    groups: list[list[str]] = []
    last = None
    for name, key in seen.items():
        if groups and key == last:
            groups[-1].append(name)
        else:
            groups.append([name])
        last = key
    return groups, [n for n in modules if n not in seen]


def layerwise(model: nn.Module, inputs: list[Any], modules: dict[str, nn.Module], solve: Solver, *,
              hessian: bool = True, dtype: torch.dtype = torch.float32, sequential: bool = True,
              progress: bool | None = None) -> dict[str, Any]:
    """Solve every layer from its input statistics, in execution order.

    Args:
        model: the model, changed in place by ``solve``.
        inputs: calibration batches (replayed once per group when ``sequential``).
        modules: ``{name: module}`` to solve; modules without an input matrix (e.g. Embedding) and modules the
            calibration never reaches get ``solve(name, module, None)`` (a data-free fallback).
        solve: ``solve(name, module, stats)`` compresses one module in place and returns a report value.
        hessian: collect ``H = 2 X^T X / n`` (else only input column norms).
        dtype: statistics dtype.
        sequential: re-run the (partly compressed) model per group; else one pass over the original model.
        progress: show a bar over layers (default: only when stderr is a terminal).

    Returns:
        ``{name: solve's return value}`` in solving order.

    Example:
        >>> layerwise(net, [x], {"fc1": net.fc1}, lambda n, m, s: s.n)
        {'fc1': 256}
    """
    data_free = [n for n, m in modules.items() if not supports(m)]
    hooked = {n: m for n, m in modules.items() if supports(m)}
    groups, unseen = execution_groups(model, inputs[0], hooked) if hooked else ([], [])
    if not sequential and groups:
        groups = [[n for g in groups for n in g]]
    results: dict[str, Any] = {}
    bar = _bar(len(modules), progress)
    for group in groups:
        stats = capture(model, inputs, {n: hooked[n] for n in group}, hessian=hessian, dtype=dtype,
                        stop_at=hooked[group[-1]] if sequential else None)
        for name in group:
            results[name] = solve(name, hooked[name], stats.pop(name, None))
            bar.update(1)
        del stats
    for name in data_free + unseen:
        results[name] = solve(name, modules[name], None)
        bar.update(1)
    bar.close()
    return results


class _NoBar:
    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool | None):
    if not (sys.stderr.isatty() if progress is None else progress):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="layers", unit="layer", leave=False, dynamic_ncols=True)
