"""k-means weight sharing (Deep Compression, stage 2) and centroid fine-tuning.

Each selected tensor's nonzero weights are clustered into k = 2**bits shared values with the fast 1-D k-means
(:func:`~netpress.quantize.kmeans.kmeans_1d`); weights that are exactly zero (pruned) get index ``-1`` and stay
exactly zero. The tensor becomes a :class:`CodebookWeight` parametrization: a compact integer ``indices`` buffer
and a float ``codebook`` :class:`~torch.nn.Parameter`, whose forward is ``decode_indices(indices, codebook)``.

Fine-tuning the centroids is then ordinary training: the gather in ``decode_indices`` sends each centroid the
sum of the gradients of the weights that share it, and the assignments (a buffer) never change.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.quantize.base import bits_per_tensor, check_finite, quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.codebook import CodebookWeight, attach as _attach
from netpress.quantize.codes import index_dtype
from netpress.quantize.kmeans import INITS, kmeans_1d


@dataclasses.dataclass(frozen=True)
class SharingHparams(Hparams):
    """k-means weight sharing options.

    Attributes:
        bits: bits per index (k = 2**bits shared values per tensor), 1-16.
        init: centroid init: ``linear``, ``forgy`` (random) or ``density``.
        iterations: Lloyd iteration cap.
        seed: seed of the random init.
    """

    bits: int = 5
    init: str = "linear"
    iterations: int = 300
    seed: int = 0

    def validate(self) -> None:
        require(isinstance(self.bits, int) and 1 <= self.bits <= 16, f"bits must be 1-16, got {self.bits!r}")
        require(self.init in INITS, f"unknown k-means init {self.init!r}; known: {', '.join(INITS.names())}")
        require(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")


def share_weights(model: nn.Module, bits: int | dict[str, int], *, init: str = "linear",
                  names: Iterable[str] | None = None, exclude: Iterable[str] = (), iterations: int = 300,
                  seed: int = 0) -> nn.Module:
    """k-means weight sharing per tensor, over the nonzero weights only (pruned zeros stay exactly zero).

    Pruning masks are stripped first (:func:`netpress.prune.strip`), so pruned weights are plain zeros; a tensor
    that already carries a quantizer is re-quantized from its current effective values.

    Args:
        model: any module, changed in place.
        bits: bits per index for every tensor, or ``{plain_name: bits}`` (1-16; k = 2**bits).
        init: ``linear`` (default), ``forgy`` or ``density``.
        names: plain names to share (names, patterns or a Selector; default: Linear, Conv, Embedding weights).
        exclude: plain names to leave alone.
        iterations: Lloyd iteration cap.
        seed: seed of the ``forgy`` init.

    Returns:
        ``model``, whose selected weights are :class:`CodebookWeight` parametrizations.

    Raises:
        ConfigError: bits outside 1-16, unknown init or name, NaN/Inf weights, or k larger than the number of
            nonzero weights of a tensor; all checked before anything changes.

    Example:
        >>> net = share_weights(build_model("lenet300"), bits=5)
        >>> len(torch.unique(net.fc_out.weight)) <= 32
        True
    """
    from netpress.prune.masks import is_masked, strip

    SharingHparams(bits=bits if isinstance(bits, int) else 5, init=init, iterations=iterations, seed=seed)
    tensors = selected_tensors(model, names, exclude)
    per_tensor = bits_per_tensor(bits, tensors)
    values = {name: getattr(m, attr).detach() for name, (m, attr) in tensors.items()}
    for name, w in values.items():
        _check_shareable(name, w, 2 ** per_tensor[name])
    if is_masked(model):
        strip(model)
    for name, (module, attr) in tensors.items():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        quantizer = kmeans_codebook(values[name], per_tensor[name], init, iterations, seed)
        _attach(module, attr, quantizer)
    return model


def _check_shareable(name: str, w: torch.Tensor, k: int) -> None:
    check_finite(name, w)
    survivors = int(torch.count_nonzero(w))
    if k > survivors:
        raise ConfigError(f"{name}: k={k} shared values but only {survivors} nonzero weights; use fewer bits "
                          f"or exclude it")


def kmeans_codebook(w: torch.Tensor, bits: int, init: str = "linear", iterations: int = 300,
                    seed: int = 0) -> CodebookWeight:
    """Cluster the nonzero entries of ``w`` into 2**bits values; zeros get index -1.

    Args:
        w: the tensor (any shape).
        bits: bits per index.
        init: k-means init name.
        iterations: Lloyd iteration cap.
        seed: random-init seed.

    Returns:
        A trainable :class:`CodebookWeight` (not yet attached).

    Example:
        >>> q = kmeans_codebook(torch.randn(8, 8), bits=2)
        >>> q.codebook.numel()
        4
    """
    flat = w.detach().reshape(-1).float().cpu()
    result = kmeans_1d(flat, 2 ** bits, init=init, max_iter=iterations, seed=seed, labels_dtype=index_dtype(bits),
                       skip_zeros=True)  # zeros get label -1 (PRUNED)
    return CodebookWeight(result.labels.reshape(w.shape).to(w.device), result.centroids.to(w.device), bits)


@dataclasses.dataclass(frozen=True)
class FinetuneHparams(Hparams):
    """Centroid fine-tuning (Deep Compression): only codebooks (and optionally biases) learn.

    Attributes:
        steps: length, e.g. ``'2ep'``.
        lr: learning rate; each centroid's gradient is a sum over its weights, so keep it small.
        optimizer: ``sgd``, ``adam`` or ``adamw``.
        momentum: SGD momentum.
        batch_size: examples per step.
        train_biases: let biases (and other float parameters) learn too.
    """

    steps: str = "2ep"
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    batch_size: int = 128
    train_biases: bool = True

    def validate(self) -> None:
        from netpress.units import Steps

        Steps.parse(self.steps, allow_zero=False)
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.optimizer in ("sgd", "adam", "adamw"), f"unknown optimizer {self.optimizer!r}")


def finetune_centroids(model: nn.Module, data, hp: FinetuneHparams = FinetuneHparams(), **train_kwargs):
    """Fine-tune shared centroids with frozen assignments (each centroid gets the sum of its weights' gradients).

    Args:
        model: a model after :func:`share_weights` (changed in place).
        data: :class:`~netpress.data.DataSplits`.
        hp: :class:`FinetuneHparams`.
        **train_kwargs: passed to :func:`netpress.train.train` (``device``, ``progress``, ...).

    Returns:
        The :class:`~netpress.train.TrainResult`.

    Raises:
        ConfigError: the model has no k-means codebooks.

    Example:
        >>> finetune_centroids(share_weights(net, bits=5), data, FinetuneHparams(steps="1ep"))
    """
    from netpress.train import TrainingHparams, train

    books = [m for m in model.modules() if isinstance(m, CodebookWeight) and isinstance(m.codebook, nn.Parameter)]
    if not books:
        raise ConfigError("finetune_centroids needs a model with trainable codebooks (call share_weights first)")
    frozen = _freeze_non_codebook(model, hp.train_biases)
    try:
        thp = TrainingHparams(optimizer=hp.optimizer, lr=hp.lr, momentum=hp.momentum, batch_size=hp.batch_size,
                              steps=hp.steps, eval_every=hp.steps)
        return train(model, data, thp, **train_kwargs)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _freeze_non_codebook(model: nn.Module, train_biases: bool) -> list[nn.Parameter]:
    codebooks = {id(m.codebook) for m in model.modules() if isinstance(m, CodebookWeight)}
    frozen = []
    for name, p in model.named_parameters():
        if id(p) in codebooks or not p.requires_grad or ".parametrizations." in name:
            continue
        if not train_biases:
            p.requires_grad_(False)
            frozen.append(p)
    return frozen
