"""Dynamic sparse training at a fixed sparsity: SET (Mocanu et al. 2018) and RigL (Evci et al. 2020).

Both are trainer callbacks. Every ``every`` iterations (until ``end``) each masked tensor drops the
``f(t)`` fraction of its active weights with the smallest magnitude and regrows as many inactive ones:
SET at random, RigL where the dense gradient is largest. ``f(t)`` decays as a cosine (RigL). Regrown weights
start at zero with zeroed optimizer state, so the per-tensor sparsity never changes. Randomness is a pure
function of (seed, iteration), so resumed runs match uninterrupted ones.

Example:
    >>> prune(net, 0.9, score="random", scope="local")
    >>> train(net, splits, hp, callbacks=[RigL(splits, every=100, end=2000)])
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError
from netpress.hparams import require
from netpress.prune.masks import apply_masks, get_masks
from netpress.prune.scores import data_batches


class SET:
    """Drop by magnitude, regrow at random.

    Args:
        every: iterations between mask updates.
        end: last iteration with updates (the cosine decay reaches zero there).
        drop_fraction: initial fraction of active weights replaced per update.
        seed: randomness seed.
    """

    def __init__(self, every: int = 100, end: int = 1000, drop_fraction: float = 0.3, seed: int = 0):
        require(every >= 1 and end >= 1, f"every and end must be >= 1, got {every}, {end}")
        require(0 < drop_fraction < 1, f"drop_fraction must be in (0, 1), got {drop_fraction}")
        self.every, self.end, self.alpha, self.seed = every, end, drop_fraction, seed

    def fraction(self, iteration: int) -> float:
        """Cosine-decayed drop fraction at ``iteration``."""
        return self.alpha / 2 * (1 + math.cos(math.pi * min(iteration, self.end) / self.end))

    def on_step_end(self, iteration: int, model: nn.Module, optimizer) -> None:
        if iteration % self.every or iteration >= self.end:
            return
        masks = get_masks(model)
        if not masks:
            raise ConfigError(f"{type(self).__name__} needs a masked model: prune it first")
        growth = self.growth_scores(model, masks, iteration)
        new = {n: self._update(model, n, m, growth[n], iteration) for n, m in masks.items()}
        apply_masks(model, new)
        _reset_regrown(model, optimizer, masks, new)

    def growth_scores(self, model, masks, iteration):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        return {n: torch.rand(m.shape, generator=g) for n, m in masks.items()}

    def _update(self, model, name, mask, grow_score, iteration) -> torch.Tensor:
        w = model.get_submodule(name.rpartition(".")[0]).parametrizations[name.rpartition(".")[2]].original
        flat_m = mask.reshape(-1).cpu()
        active = flat_m > 0
        k = int(self.fraction(iteration) * int(active.sum()))
        k = min(k, int((~active).sum()))
        if k == 0:
            return mask
        mag = w.detach().abs().reshape(-1).cpu().double().masked_fill(~active, math.inf)
        drop = torch.topk(mag, k, largest=False).indices
        g = grow_score.reshape(-1).cpu().double().masked_fill(active, -math.inf)  # just-dropped are not regrown
        grow = torch.topk(g, k).indices
        out = flat_m.clone()
        out[drop] = 0
        out[grow] = 1
        return out.reshape(mask.shape)


class RigL(SET):
    """Drop by magnitude, regrow where |dL/dw| of the dense weight is largest, on ``num_batches`` batches.

    Args:
        data: a Dataset or DataSplits the dense gradient is taken on.
        batch_size, num_batches: gradient batches (batches rotate with the update count).
        every, end, drop_fraction, seed: as :class:`SET`.
    """

    def __init__(self, data, every: int = 100, end: int = 1000, drop_fraction: float = 0.3, seed: int = 0,
                 batch_size: int = 128, num_batches: int = 1):
        super().__init__(every, end, drop_fraction, seed)
        self.data, self.batch_size, self.num_batches = data, batch_size, num_batches

    def growth_scores(self, model, masks, iteration):
        mods = {n: (model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]) for n in masks}
        dev = next(model.parameters()).device
        grads = {n: torch.zeros(m.shape) for n, m in masks.items()}
        for batch in data_batches(self.data, self.batch_size, self.num_batches):
            with parametrize.cached():
                ws = {n: getattr(m, a) for n, (m, a) in mods.items()}
                loss = nn.functional.cross_entropy(model(batch.x.to(dev)), batch.y.to(dev))
                gs = torch.autograd.grad(loss, list(ws.values()))
            for n, gr in zip(ws, gs):
                grads[n] += gr.detach().cpu()
        return {n: g.abs() for n, g in grads.items()}


def _reset_regrown(model, optimizer, old, new) -> None:
    """Regrown weights start at zero, with zeroed optimizer moments."""
    for n in new:
        grown = (new[n] > 0) & (old[n] <= 0)
        if not grown.any():
            continue
        mod, attr = model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]
        p = mod.parametrizations[attr].original
        with torch.no_grad():
            p[grown.to(p.device)] = 0
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v[grown.to(v.device)] = 0
