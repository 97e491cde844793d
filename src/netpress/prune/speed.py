"""Real speed from unstructured sparsity: Linear layers whose weight is stored as CSR (torch.sparse_csr).

Example:
    >>> fast = to_csr(strip(pruned), min_sparsity=0.8)   # swaps eligible nn.Linear for CSRLinear
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune.masks import get_masks


class CSRLinear(nn.Module):
    """Inference-only Linear with a CSR weight (int32 indices): ``y = x W^T + b`` via ``torch.mv`` at batch 1,
    else ``torch.sparse.mm(W, x^T)``.

    Args:
        linear: an ordinary (stripped) nn.Linear; its zeros are dropped from storage.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        csr = w.to_sparse_csr()
        if csr.values().numel() < 2 ** 31:  # int32 indices: much faster kernels (less memory traffic) on CPU
            csr = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape)
        self.register_buffer("weight_csr", csr)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[0] == 1:  # matrix-vector, bias fused: the fastest CSR path at batch 1
            if self.bias is None:
                return torch.mv(self.weight_csr, x[0]).unsqueeze(0)
            return torch.addmv(self.bias, self.weight_csr, x[0]).unsqueeze(0)
        flat = x.reshape(-1, self.in_features)
        if flat.shape[0] == 1:
            y = torch.mv(self.weight_csr, flat[0]).unsqueeze(0)
        else:
            y = torch.sparse.mm(self.weight_csr, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight_csr.values().numel()
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={nnz}"


def to_csr(model: nn.Module, min_sparsity: float = 0.8, inplace: bool = False) -> nn.Module:
    """Swap every nn.Linear whose weight has at least ``min_sparsity`` zeros for a :class:`CSRLinear`.

    Args:
        model: a stripped model (masks made permanent with :func:`netpress.prune.strip`).
        min_sparsity: below this, dense matmul is faster and the layer is left alone.
        inplace: change ``model`` rather than a copy.

    Returns:
        The model with CSR layers (inference only: no gradients flow to CSR weights).
    """
    if get_masks(model):
        raise ConfigError("strip() the model before converting to CSR")
    model = model if inplace else copy.deepcopy(model)
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.Linear) and float((child.weight == 0).float().mean()) >= min_sparsity:
                setattr(mod, cname, CSRLinear(child))
    return model


@torch.no_grad()
@torch.inference_mode()
def latency(fn, x: torch.Tensor, repeats: int = 50, warmup: int = 5) -> float:
    """Median seconds per call of ``fn(x)``, in inference mode (no autograd bookkeeping)."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]
