"""Low-rank factorization of any nn.Module: plan per-layer ranks, replace layers by name, report, fine-tune."""
from __future__ import annotations

import copy
import dataclasses
import heapq
from pathlib import Path

import torch
from torch import nn

from netpress.data.base import DataSplits
from netpress.errors import ConfigError
from netpress.lowrank.hparams import LowRankHparams
from netpress.lowrank.svd import (check_rank, factorizable, factorize_layer, rank_for_energy,
                                  rank_for_ratio, singular_values, weight_matrix)
from netpress.train import TrainingHparams, TrainResult, evaluate, train
from netpress.units import Steps


@dataclasses.dataclass
class LayerReport:
    """What factorizing one layer did.

    Attributes:
        name: module name (``'features.0'``).
        kind: ``linear`` or ``conv2d``.
        shape: ``(m, n)`` of the weight matrix.
        rank: chosen rank k, or None when the layer was kept dense (factorizing would not save weights).
        max_rank: ``min(m, n)``.
        energy_kept: fraction of squared singular values kept (1.0 when dense).
        error: ``||W - W_k||_F^2``, the sum of discarded squared singular values (0 when dense).
        relative_error: ``||W - W_k||_F / ||W||_F``.
        params_before: weights + bias of the layer.
        params_after: weights + bias of its replacement.
        singular_values: the full spectrum, descending.
    """

    name: str
    kind: str
    shape: tuple[int, int]
    rank: int | None
    max_rank: int
    energy_kept: float
    error: float
    relative_error: float
    params_before: int
    params_after: int
    singular_values: list[float]

    def to_dict(self, spectrum: bool = False) -> dict:
        d = dataclasses.asdict(self)
        if not spectrum:
            d.pop("singular_values")
        return d


@dataclasses.dataclass
class LowRankResult:
    """A factorized model and its per-layer reports.

    Attributes:
        model: the factorized model.
        layers: one :class:`LayerReport` per selected layer.
        params_before, params_after: parameters of the whole model.
        finetune: the fine-tuning :class:`TrainResult`, if any.
        spectrum_png: path of the singular-value plot, if one was written.
        factorized_test_accuracy: test accuracy right after factorization (before fine-tuning), when data was given.
    """

    model: nn.Module
    layers: list[LayerReport]
    params_before: int
    params_after: int
    finetune: TrainResult | None = None
    spectrum_png: Path | None = None
    factorized_test_accuracy: float | None = None

    @property
    def ranks(self) -> dict[str, int]:
        """``{layer name: rank}`` of the factorized layers (pass to :func:`apply_ranks` to rebuild a skeleton)."""
        return {r.name: r.rank for r in self.layers if r.rank is not None}

    def summary(self) -> dict:
        fac_before = sum(r.params_before for r in self.layers)
        fac_after = sum(r.params_after for r in self.layers)
        out = {"params_before": self.params_before, "params_after": self.params_after,
               "ratio": self.params_before / max(self.params_after, 1),
               "layer_params_before": fac_before, "layer_params_after": fac_after,
               "layer_ratio": fac_before / max(fac_after, 1), "ranks": self.ranks,
               "layers": [r.to_dict() for r in self.layers]}
        if self.finetune is not None:
            out["finetune"] = self.finetune.summary()
        if self.spectrum_png is not None:
            out["spectrum_png"] = str(self.spectrum_png)
        if self.factorized_test_accuracy is not None:
            out["factorized_test_accuracy"] = self.factorized_test_accuracy
        return out


def count_params(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def select_layers(model: nn.Module, layers: str = "linear") -> list[str]:
    """Names of the modules ``layers`` designates (``linear``, ``conv``, ``all`` or comma-separated names).

    Raises:
        ConfigError: an unknown name, a module that is not a Linear/groups=1 Conv2d, or an empty selection.
    """
    mods = dict(model.named_modules())
    group = {"linear": (nn.Linear,), "conv": (nn.Conv2d,), "all": (nn.Linear, nn.Conv2d)}.get(layers.strip())
    if group is not None:
        names = [n for n, m in mods.items() if isinstance(m, group) and factorizable(m) and n]
    else:
        names = [n.strip() for n in layers.split(",") if n.strip()]
        for n in names:
            if n not in mods:
                raise ConfigError(f"no module {n!r} in the model; known: {', '.join(k for k in mods if k)}")
            if not factorizable(mods[n]):
                raise ConfigError(f"module {n!r} is a {type(mods[n]).__name__}; only Linear and groups=1 Conv2d factorize")
    if not names:
        raise ConfigError(f"no layer to factorize for layers={layers!r}")
    return names


def _profitable_cap(m: int, n: int) -> int:
    """Largest k with k(m+n) < mn (at least 0)."""
    return max(0, (m * n - 1) // (m + n))


def _budget_ranks(spectra: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]], budget: int,
                  caps: dict[str, int]) -> dict[str, int]:
    """Greedy allocation: each layer starts at rank 1, then ranks go where kept energy per weight is largest."""
    cost = {n: m + k for n, (m, k) in shapes.items()}
    spent = sum(cost.values())
    if spent > budget:
        raise ConfigError(f"parameter budget {budget} is below the {spent} weights of rank 1 in every selected layer")
    ranks = {n: 1 for n in spectra}
    share = {n: (s ** 2 / max((s ** 2).sum().item(), 1e-300)).tolist() for n, s in spectra.items()}
    heap = [(-share[n][1] / cost[n], n) for n in spectra if caps[n] > 1]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        if spent + cost[n] > budget:
            continue
        spent += cost[n]
        ranks[n] += 1
        if ranks[n] < caps[n]:
            heapq.heappush(heap, (-share[n][ranks[n]] / cost[n], n))
    return ranks


def plan_ranks(model: nn.Module, hparams: LowRankHparams) -> tuple[dict[str, int | None], dict[str, torch.Tensor]]:
    """Choose each selected layer's rank (None = keep dense) without changing the model.

    Args:
        model: any nn.Module.
        hparams: the rank selector and layer selection.

    Returns:
        ``(ranks, spectra)``: rank per layer name, and each layer's singular values.

    Raises:
        ConfigError: a rank above min(m, n), a budget too small, or a bad layer selection.

    Example:
        >>> ranks, _ = plan_ranks(model, LowRankHparams(energy=0.9))
    """
    mods = dict(model.named_modules())
    names = select_layers(model, hparams.layers)
    shapes = {n: tuple(weight_matrix(mods[n]).shape) for n in names}
    if hparams.rank is not None:
        for n in names:
            check_rank(mods[n], hparams.rank, n)
    spectra = {n: singular_values(mods[n]) for n in names}
    full = {n: min(shapes[n]) for n in names}
    caps = {n: max(1, _profitable_cap(*shapes[n])) if hparams.skip_unprofitable else full[n] for n in names}
    if hparams.budget is not None:
        ranks = _budget_ranks(spectra, shapes, hparams.budget, {n: min(caps[n], full[n]) for n in names})
    else:
        ranks = {n: _rank(hparams, spectra[n], *shapes[n]) for n in names}
    return {n: _keep_dense(k, shapes[n], hparams.skip_unprofitable) for n, k in ranks.items()}, spectra


def _rank(hp: LowRankHparams, s: torch.Tensor, m: int, n: int) -> int:
    if hp.energy is not None:
        return rank_for_energy(s, hp.energy)
    if hp.ratio is not None:
        return rank_for_ratio(m, n, hp.ratio)
    return hp.rank


def _keep_dense(rank: int, shape: tuple[int, int], skip_unprofitable: bool) -> int | None:
    m, n = shape
    return None if skip_unprofitable and rank * (m + n) >= m * n else rank


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _report(name: str, layer: nn.Module, rank: int | None, s: torch.Tensor, after: int) -> LayerReport:
    m, n = weight_matrix(layer).shape
    sq = s ** 2
    total = sq.sum().item()
    err = sq[rank:].sum().item() if rank is not None else 0.0
    return LayerReport(name=name, kind="linear" if isinstance(layer, nn.Linear) else "conv2d", shape=(m, n),
                       rank=rank, max_rank=min(m, n), energy_kept=1.0 - err / total if total else 1.0, error=err,
                       relative_error=(err / total) ** 0.5 if total else 0.0, params_before=count_params(layer),
                       params_after=after, singular_values=s.tolist())


def apply_ranks(model: nn.Module, ranks: dict[str, int], spectra: dict[str, torch.Tensor] | None = None,
                inplace: bool = True) -> tuple[nn.Module, list[LayerReport]]:
    """Factorize the named layers of ``model`` at the given ranks (all checked before any change).

    Also the way to build a loading skeleton: apply the ranks of a saved factorized model to a fresh model.

    Args:
        model: any nn.Module.
        ranks: ``{module name: rank}``.
        spectra: precomputed singular values (else computed).
        inplace: modify ``model`` (else a deep copy).

    Returns:
        ``(model, reports)``.

    Raises:
        ConfigError: an unknown/unfactorizable module or a rank outside [1, min(m, n)].

    Example:
        >>> skeleton, _ = apply_ranks(build_model("lenet300", (1, 28, 28), 10), result.ranks)
    """
    mods = dict(model.named_modules())
    if ranks:
        select_layers(model, ",".join(ranks))
    for name, k in ranks.items():
        check_rank(mods[name], k, name)
    model = model if inplace else copy.deepcopy(model)
    mods = dict(model.named_modules())
    reports = []
    for name, k in ranks.items():
        layer = mods[name]
        s = spectra[name] if spectra is not None else singular_values(layer)
        new = factorize_layer(layer, k)
        reports.append(_report(name, layer, k, s, count_params(new)))
        _replace(model, name, new)
    _record_spec(model, ranks)
    return model, reports


def _record_spec(model: nn.Module, ranks: dict[str, int]) -> None:
    spec = getattr(model, "netpress_spec", None)
    if isinstance(spec, dict):
        model.netpress_spec = {**spec, "low_rank": {**spec.get("low_rank", {}), **ranks}}


def low_rank(model: nn.Module, hparams: LowRankHparams, *, data: DataSplits | None = None,
             train_hp: TrainingHparams | None = None, spectrum_png: str | Path | None = None, inplace: bool = False,
             device: str = "auto", progress: bool | None = None) -> LowRankResult:
    """Factorize ``model``'s layers by truncated SVD, report per layer, and optionally fine-tune.

    Args:
        model: any nn.Module (not modified unless ``inplace``).
        hparams: :class:`LowRankHparams` (rank selector, layers, fine-tuning length).
        data: needed when ``hparams.finetune`` is longer than zero; when given, the factorized model's test
            accuracy (before fine-tuning) is recorded.
        train_hp: fine-tuning hyperparameters (its ``steps`` is replaced by ``hparams.finetune``).
        spectrum_png: if given, write the singular-value plot of every selected layer there.
        inplace: factorize ``model`` itself.
        device, progress: passed to :func:`netpress.train.train`.

    Returns:
        :class:`LowRankResult`.

    Raises:
        ConfigError: bad ranks/energy/budget, or fine-tuning requested without data (before any work).

    Example:
        >>> res = low_rank(model, LowRankHparams(energy=0.95, finetune="2ep"), data=load_data("fashion-mnist"))
        >>> res.summary()["ratio"], res.layers[0].rank
    """
    finetune = Steps.parse(hparams.finetune)
    if (finetune.epochs or finetune.its) and data is None:
        raise ConfigError("fine-tuning after factorization needs data")
    before = count_params(model)
    planned, spectra = plan_ranks(model, hparams)
    ranks = {n: k for n, k in planned.items() if k is not None}
    mods = dict(model.named_modules())
    dense = [_report(n, mods[n], None, spectra[n], count_params(mods[n])) for n, k in planned.items() if k is None]
    new, reports = apply_ranks(model, ranks, spectra, inplace=inplace)
    reports = sorted(reports + dense, key=lambda r: list(planned).index(r.name))
    result = LowRankResult(new, reports, before, count_params(new))
    if spectrum_png is not None:
        from netpress.report.lowrank import plot_spectra

        result.spectrum_png = plot_spectra(reports, spectrum_png)
    if data is not None:
        result.factorized_test_accuracy = evaluate(new, data.test).accuracy
    if finetune.epochs or finetune.its:
        hp = (train_hp or TrainingHparams()).replace(steps=str(finetune))
        result.finetune = train(new, data, hp, device=device, progress=progress, desc="finetune low-rank")
    return result
