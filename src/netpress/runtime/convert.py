"""``convert``: a compressed (pruned / quantized) model -> the same function executed by the fastest kernels here."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams
from netpress.runtime import kernels
from netpress.runtime.encoder import is_bert_layer, make_lean
from netpress.runtime.memory import resident_bytes
from netpress.runtime.plan import LayerPlan, Plan, TimingCache, choose, machine_id, median_seconds


@dataclasses.dataclass(frozen=True)
class RuntimeHparams(Hparams):
    """How :func:`convert` picks kernels.

    Attributes:
        batch_sizes: batch sizes of the default example inputs (registry models); the choice balances them.
        kinds: kernel kinds allowed (``dense`` is always the fallback).
        measure: time the kinds on this machine (False: the first applicable kind in ``kinds`` order).
        slack: kinds within this fraction of the fastest count as equally fast; the smallest in memory wins
            (when it saves at least ``plan.MIN_SAVING`` of the fastest kind's bytes).
        model_slack: a layer's smaller kind also counts as equally fast when its extra time fits in a budget of
            this fraction of the whole model's measured time, shared by all layers in order (e.g. a low-bit
            Embedding: microseconds in a model of milliseconds; a tiny table saving bytes nobody needs does not
            get the budget left after the big one).
        fuse: time and, where faster, fuse any int8 Linear siblings that read the same tensor. Off by default:
            behind the Hugging Face attention code, MiniLM's fused query/key/value timed faster alone but ran 2-15%
            slower end to end (the split outputs are strided views the attention code then copies).
        lean: give BERT-like encoder layers (Hugging Face BertLayer and relatives, recognised by structure) a lean
            forward: the same function in a few tensor ops around the chosen kernels, falling back to the
            original forward for anything else (see :mod:`netpress.runtime.encoder`). Their int8 query/key/value
            are timed as one GEMM and fused where faster (even with ``fuse`` off): the lean forward views the
            fused output as heads, no copies (MiniLM, 1 thread: 5-10% faster end to end at batch 1).
        skip_padding: lean layers run their output projection, feed-forward and norms on the real tokens of a
            padded batch only (a bool key-padding mask, as Hugging Face's SDPA path passes): padded positions pass
            their input through, so their outputs differ from Hugging Face's (values no real token reads); real
            tokens as before, their int8 activations quantized over real rows only. MiniLM, batch 32 with 16% of
            the rows padding: ~4% faster end to end. False: every position as Hugging Face computes it.
        requant_tol: the largest int8 re-quantization error allowed (``max|w - q*s| / max|w|`` per row) for a
            quantized weight that is not already on an int8 grid (k-means codebooks); 0 = exact only.
        repeats: timed calls per kind and input.
        cache: JSON file of timings keyed by machine + layer signature (None: no cache).
    """

    batch_sizes: tuple[int, ...] = (1, 32)
    kinds: tuple[str, ...] = ("dense", "int8", "lowbit", "csr")
    measure: bool = True
    slack: float = 0.1
    model_slack: float = 0.01
    fuse: bool = False
    lean: bool = True
    skip_padding: bool = True
    requant_tol: float = 0.01
    repeats: int = 30
    cache: str | None = None

    def validate(self) -> None:
        for k in self.kinds:
            kernels.KERNELS.get(k)
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch_sizes must be positive, got {self.batch_sizes}")
        if not 0 <= self.slack < 10 or not 0 <= self.model_slack < 1 or not 0 <= self.requant_tol < 1 \
                or self.repeats < 1:
            raise ConfigError(f"bad slack {self.slack}, requant_tol {self.requant_tol} or repeats {self.repeats}")


Timer = Callable[[dict[str, nn.Module], torch.Tensor], dict[str, float]]


def convert(model: nn.Module, codes: Mapping[str, Any] | Iterable[str] | None = None, plan: Plan | None = None, *,
            example_inputs: list | None = None, hp: RuntimeHparams = RuntimeHparams(),
            timer: Timer | None = None) -> nn.Module:
    """A copy of ``model`` whose Linear / Conv2d / Embedding layers run from compressed weights where that is faster.

    Quantized layers (those in ``codes``) may run as ``int8`` or ``lowbit``; sparse Linear layers as ``csr``;
    every layer may stay ``dense``. Unquantized weights are never rounded.

    Args:
        model: a compressed model (masks / quantizers attached, or plain decoded weights as from ``netpress.load``).
        codes: ``{plain_name: Codes}`` or just the names of quantized weights (default:
            :func:`netpress.quantize.export_codes`).
        plan: re-apply a saved :class:`Plan` instead of measuring.
        example_inputs: inputs to run the model on (a tensor, tuple of args or dict of kwargs each), one per batch
            size; default: random inputs of the registry model's ``input_shape`` at ``hp.batch_sizes``. Not needed
            with ``hp.measure=False`` (then every supported layer is converted).
        hp: see :class:`RuntimeHparams`.
        timer: ``timer({kind: module}, x) -> {kind: seconds}`` (default: interleaved medians on this machine).

    Returns:
        The runtime model (inference only, eval mode) with ``runtime_plan`` (a :class:`Plan`) attached.

    Raises:
        ConfigError: no example inputs for a non-registry model, a plan that does not fit the model.

    Example:
        >>> fast = convert(share_weights(prune(net, 0.92), bits=5))
        >>> print(fast.runtime_plan.choices())     # {'features.0': 'int8', 'fc_out': 'dense', ...}
    """
    timed = hp.measure and plan is None
    inputs = _example_inputs(model, example_inputs, hp) if timed or example_inputs is not None else None
    names = _quantized_names(model, codes)
    plain = _plain_copy(model)
    layers = {n: m for n, m in plain.named_modules() if kernels.supported(m)}
    if plan is not None:
        missing = sorted(set(plan.choices()) - set(layers))
        if missing:
            raise ConfigError(f"the plan names layers this model does not have: {missing[:5]}")
    seen, sources = _layer_inputs(plain, layers, inputs) if inputs is not None else ({n: [] for n in layers}, {})
    measure = timer or (lambda ms, t: median_seconds(ms, t, hp.repeats))
    cache, machine = TimingCache(hp.cache), machine_id()
    allowance = _model_allowance(plain, inputs, hp, measure, cache, machine) if timed else None
    chosen: dict[str, LayerPlan] = {}
    for name, module in layers.items():
        if name not in seen:
            continue
        info = kernels.LayerInfo(name, _weight_name(name) in names, hp.requant_tol)
        want = plan.choices().get(name) if plan is not None else None
        layer, new = _choose_layer(name, module, seen[name], info, hp, want, timer, cache, machine, allowance)
        plain = new if not name else _replace(plain, name, new)
        chosen[name] = layer
    groups = _planned_groups(plan) if plan is not None else (
        _sibling_groups(sources, chosen, layers) if timed and (hp.fuse or hp.lean) else [])
    if plan is None and not hp.fuse:
        groups = [g for g in groups if g in _lean_qkv(plain)]
    for group in groups:
        _try_fuse(plain, group, layers, chosen, seen, measure, forced=plan is not None)
    cache.save()
    lean = make_lean(plain, hp.skip_padding) if hp.lean else []
    plain.runtime_plan = Plan(machine, list(chosen.values()), lean)
    return plain


class _Call(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return run(self.model, x)


def _model_allowance(model: nn.Module, inputs: list, hp: RuntimeHparams, measure: Timer, cache: TimingCache,
                     machine: str) -> list[float]:
    """Seconds the layers together may spend over their fastest kinds to save memory: ``model_slack`` of the
    model's time (one budget per input, used up in layer order)."""
    n_params = sum(p.numel() for p in model.parameters())
    out = []
    for x in inputs:
        key = f"{machine}|model|{type(model).__name__}|{n_params}|{_shapes(x)}"
        if key not in cache.data:
            cache.data[key] = float(measure({"model": _Call(model)}, x).get("model", 0.0))
        out.append(hp.model_slack * cache.data[key])
    return out


def _shapes(x) -> str:
    if isinstance(x, dict):
        return str({k: list(v.shape) for k, v in x.items() if hasattr(v, "shape")})
    if isinstance(x, (tuple, list)):
        return str([list(v.shape) for v in x if hasattr(v, "shape")])
    return str(list(x.shape))


def _sibling_groups(sources: dict[str, int], chosen: dict[str, LayerPlan], layers: dict) -> list[list[str]]:
    by_source: dict[tuple, list[str]] = {}
    for name, src in sources.items():
        m = layers[name]
        if chosen.get(name) and chosen[name].kind == "int8" and type(m) is nn.Linear and not m.weight.is_cuda:
            by_source.setdefault((src, m.in_features), []).append(name)
    return [g for g in by_source.values() if len(g) > 1]


def _lean_qkv(model: nn.Module) -> list[list[str]]:
    """``[query, key, value]`` names of every layer the lean forward will run (one GEMM's output it views as heads)."""
    return [[f"{n}{'.' if n else ''}attention.self.{p}" for p in ("query", "key", "value")]
            for n, m in model.named_modules() if is_bert_layer(m)]


def _planned_groups(plan: Plan) -> list[list[str]]:
    return [g.split(",") for g in dict.fromkeys(layer.group for layer in plan.layers if layer.group)]


def _try_fuse(root, group, layers, chosen, seen, measure, forced: bool) -> None:
    from netpress.runtime.fusion import fuse

    members = fuse([layers[n] for n in group])
    if not forced:
        fused = [float(measure({"fused": members[0].group}, x)["fused"]) for x in seen[group[0]]]
        apart = [sum(chosen[n].seconds["int8"][i] for n in group) for i in range(len(fused))]
        if sum(f / max(a, 1e-12) for f, a in zip(fused, apart)) >= len(fused):
            return
        for n in group:
            chosen[n].seconds["int8_fused_group"] = fused
    for n, member in zip(group, members):
        _replace(root, n, member)
        chosen[n].group = ",".join(group)


def _choose_layer(name, module, xs, info, hp, want, timer, cache, machine, allowance) -> tuple[LayerPlan, nn.Module]:
    kinds = [want] if want else list(dict.fromkeys([*hp.kinds, "dense"]))
    built = {k: m for k in kinds if (m := kernels.build(k, module, info)) is not None}
    if want and want not in built:
        raise ConfigError(f"plan kind {want!r} does not apply to layer {name}")
    if not hp.measure or len(built) == 1:
        kind = next(iter(built))
        seconds = {k: [] for k in built}
    else:
        seconds = _seconds(built, xs, module, hp, timer, cache, machine)
        sizes = {k: resident_bytes(m) for k, m in built.items()}
        kind = choose(seconds, sizes, hp.slack, allowance)
        if allowance is not None and kind != choose(seconds, sizes, hp.slack):
            _spend(allowance, seconds, kind)
    resident = {k: resident_bytes(m) for k, m in built.items()}
    layer = LayerPlan(name, type(module).__name__, list(module.weight.shape), [list(x.shape) for x in xs], kind,
                      seconds, resident, float(getattr(built[kind], "error", 0.0)))
    return layer, built[kind]


def _spend(allowance: list[float], seconds: dict[str, list[float]], kind: str) -> None:
    """Charge a kind chosen only thanks to the allowance (its time over the fastest kind) to the shared budget."""
    for i in range(len(allowance)):
        allowance[i] = max(0.0, allowance[i] - (seconds[kind][i] - min(v[i] for v in seconds.values())))


def _seconds(built, xs, module, hp, timer, cache, machine) -> dict[str, list[float]]:
    op = type(module).__name__
    out: dict[str, list[float]] = {k: [] for k in built}
    for x in xs:
        keys = {k: TimingCache.key(machine, op, module.weight, x, k) for k in built}
        todo = {k: m for k, m in built.items() if timer is not None or keys[k] not in cache.data}
        got = (timer or (lambda ms, t: median_seconds(ms, t, hp.repeats)))(todo, x) if todo else {}
        for k in built:
            s = got[k] if k in got else cache.data[keys[k]]
            cache.data[keys[k]] = s
            out[k].append(float(s))
    return out


def _example_inputs(model: nn.Module, example_inputs, hp: RuntimeHparams) -> list:
    if example_inputs is not None:
        got = list(example_inputs) if isinstance(example_inputs, list) else [example_inputs]
        if not got:
            raise ConfigError("example_inputs is empty")
        return got
    spec = getattr(model, "netpress_spec", None)
    shape = (spec or {}).get("input_shape")
    if not shape:
        raise ConfigError(f"pass example_inputs: {type(model).__name__} is not a registry model with an input_shape")
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(int(b), *shape, generator=gen) for b in hp.batch_sizes]


def _quantized_names(model: nn.Module, codes) -> set[str]:
    if codes is None:
        from netpress.quantize import export_codes

        return set(export_codes(model))
    return set(codes.keys() if isinstance(codes, Mapping) else codes)


def _plain_copy(model: nn.Module) -> nn.Module:
    from torch.nn.utils import parametrize

    from netpress.prune.masks import _own_class, strip
    from netpress.quantize import strip_quantization

    plain = copy.deepcopy(model)
    for m in plain.modules():
        if parametrize.is_parametrized(m):
            _own_class(m)  # removing a parametrization from the copy must not touch the original's class
    plain = strip(strip_quantization(plain, activations=False))
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain.eval()


def _weight_name(layer: str) -> str:
    return f"{layer}.weight" if layer else "weight"


@torch.inference_mode()
def _layer_inputs(model: nn.Module, layers: dict[str, nn.Module], inputs: list):
    """Each layer's input per example input, and which tensor object it read in the first one (siblings share)."""
    seen: dict[str, list[torch.Tensor]] = {}
    sources: dict[str, int] = {}
    alive: list[torch.Tensor] = []  # keeps first-pass inputs alive so their ids stay unique

    def hook(name):
        def record(_m, args):
            if len(seen.setdefault(name, [])) < len(done) + 1:
                seen[name].append(args[0].detach().clone())
                if not done:
                    sources[name] = id(args[0])
                    alive.append(args[0])
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    done: list[int] = []
    try:
        for x in inputs:
            run(model, x)
            done.append(1)
    finally:
        for h in handles:
            h.remove()
    complete = {n: v for n, v in seen.items() if len(v) == len(inputs)}
    return complete, {n: s for n, s in sources.items() if n in complete}


def run(model: nn.Module, x) -> Any:
    """Call ``model`` on an example input: a tensor, a tuple of positional args, or a dict of keyword args."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def _replace(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)
    return root
