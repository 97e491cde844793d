"""``compress_pretrained``: one call from a pretrained model and unlabeled calibration inputs to a ``.netp`` file.

No training: one-shot stages (data-aware pruning, quantization, encoding) read from a pretrained recipe
(``pretrained-8bit``, ``pretrained-4bit``, ``pretrained-balanced``, ``pretrained-max`` or a YAML file), the quality
measured against the original model's outputs after every stage, and a Markdown report.

Example:
    >>> result = netpress.compress_pretrained(encoder, calib_inputs, "pretrained-4bit", out="m.netp")
    >>> result.summary()["ratio"], result.summary()["cosine_mean"]
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.fileio import atomic_write_text
from netpress.hparams import Hparams, require
from netpress.pipeline.recipe import Recipe, RecipeError, load_recipe
from netpress.registry import Registry

PRETRAINED = ("pretrained-8bit", "pretrained-4bit", "pretrained-balanced", "pretrained-max")
Quality = Callable[[nn.Module], dict]


def _selector(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value) and value)


@dataclasses.dataclass(frozen=True)
class OneshotPrune(Hparams):
    """One-shot pruning without retraining.

    Attributes:
        method: a registered one-shot pruner: ``wanda`` (|w| x input norm), ``sparsegpt`` (OBS weight update) or
            ``magnitude`` (data-free).
        sparsity: fraction of zeros per selected tensor (unstructured).
        pattern: ``''`` (unstructured) or ``'N:M'`` (N weights kept in every M consecutive inputs, e.g. ``'2:4'``).
        select: which weights: a :mod:`netpress.select` selector (module types, globs, ``re:``, ``!exclude``).
        sequential: data-aware methods calibrate each layer on the already-compressed earlier layers' outputs
            (slower, usually better); False: one pass over the original model.
    """

    method: str = "magnitude"
    sparsity: float = 0.5
    pattern: str = ""
    select: Any = "Linear"
    sequential: bool = True

    def validate(self) -> None:
        require(self.method in PRUNERS, f"method: unknown {self.method!r}; known: {', '.join(PRUNERS.names())}")
        require(isinstance(self.sparsity, (int, float)) and 0 <= self.sparsity < 1,
                f"sparsity: must be a fraction in [0, 1), got {self.sparsity!r}")
        require(self.pattern == "" or _nm(self.pattern) is not None, f"pattern: must be '' or 'N:M', got {self.pattern!r}")
        require(_selector(self.select), f"select: must be a name/type selector or a list of them, got {self.select!r}")
        require(isinstance(self.sequential, bool), f"sequential: must be true or false, got {self.sequential!r}")


def _nm(pattern: str) -> tuple[int, int] | None:
    n, _, m = str(pattern).partition(":")
    if not (n.isdigit() and m.isdigit()) or not 0 < int(n) < int(m):
        return None
    return int(n), int(m)


@dataclasses.dataclass(frozen=True)
class OneshotQuantize(Hparams):
    """One-shot weight quantization.

    Attributes:
        method: a registered one-shot quantizer: ``gptq`` (error-compensating rounding to a uniform grid),
            ``gptq-kmeans`` (k-means codebook, GPTQ assignment), ``gptq-ecsq`` (entropy-constrained levels, GPTQ
            assignment: for an entropy-coded file), ``uniform`` (round to nearest), ``kmeans`` (weight sharing).
            Tensors without input statistics (embeddings) fall back to round-to-nearest (``gptq-ecsq``: plain ECSQ).
        bits: an int for every selected tensor, or ``{selector: bits}`` (first matching key wins).
        granularity: uniform codes per ``tensor``, ``channel`` or ``group`` (``gptq``: a weight that
            ``group_size`` does not split into several groups gets per-channel codes).
        group_size: values per group (``group``).
        calibration: range calibration for uniform codes (``minmax``, ``mse``, ...).
        select: which weights: a :mod:`netpress.select` selector (module types, globs, ``re:``, ``!exclude``).
        sequential: as for :class:`OneshotPrune` (GPTQ methods).
        step: ``gptq`` only: ``0`` a fixed-rate grid of ``2**bits`` levels; ``> 0`` an entropy-coded grid whose step
            is ``step`` x each tensor's standard deviation (``bits`` then caps the levels; see
            :class:`netpress.quantize.gptq.GPTQHparams`).
        act_order: ``gptq`` only: round the columns with the largest input energy first.
        awq: ``gptq`` methods: scale the selected Linear weights activation-aware first (AWQ, see
            :mod:`netpress.calibrate.awq`; folds that would change the model's output are skipped).
        lam: ``gptq-ecsq`` only: the rate weight relative to each tensor's weight variance (0 = k-means levels).
    """

    method: str = "uniform"
    bits: Any = 8
    granularity: str = "channel"
    group_size: int = 0
    calibration: str = "mse"
    select: Any = dataclasses.field(default_factory=lambda: ["Linear", "Embedding"])
    sequential: bool = True
    step: float = 0.0
    act_order: bool = False
    awq: bool = False
    lam: float = 0.0

    def validate(self) -> None:
        require(self.method in QUANTIZERS, f"method: unknown {self.method!r}; known: {', '.join(QUANTIZERS.names())}")
        table = self.bits if isinstance(self.bits, dict) else {"*": self.bits}
        for key, b in table.items():
            require(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 16,
                    f"bits{'' if key == '*' else '.' + key}: must be an integer in 1-16, got {b!r}")
        from netpress.quantize.uniform import UniformSpec

        UniformSpec(bits=8, granularity=self.granularity, group_size=self.group_size, calibration=self.calibration)
        require(_selector(self.select), f"select: must be a name/type selector or a list of them, got {self.select!r}")
        require(isinstance(self.sequential, bool), f"sequential: must be true or false, got {self.sequential!r}")
        require(isinstance(self.step, (int, float)) and not isinstance(self.step, bool) and self.step >= 0,
                f"step: must be a number >= 0, got {self.step!r}")
        require(not self.step or (self.method == "gptq" and self.granularity == "channel"),
                "step: an entropy-coded grid needs method gptq and granularity channel")
        require(isinstance(self.act_order, bool), f"act_order: must be true or false, got {self.act_order!r}")
        require(not self.act_order or self.method.startswith("gptq"), "act_order: only for the gptq methods")
        require(isinstance(self.awq, bool), f"awq: must be true or false, got {self.awq!r}")
        require(not self.awq or self.method.startswith("gptq"), "awq: only for the gptq methods")
        require(isinstance(self.lam, (int, float)) and not isinstance(self.lam, bool) and 0 <= self.lam < float("inf"),
                f"lam: must be a number >= 0, got {self.lam!r}")
        require(not self.lam or self.method == "gptq-ecsq", "lam: only for method gptq-ecsq")


@dataclasses.dataclass(frozen=True)
class OneshotEncode(Hparams):
    """Writing the ``.netp`` file; ``coder``: ``ans`` (default), ``huffman``, ``context``, ``auto`` or ``packed``."""

    coder: str = "ans"

    def validate(self) -> None:
        from netpress.encode.streams import CODERS

        require(self.coder in CODERS, f"coder: unknown {self.coder!r}; known: {', '.join(CODERS)}")


ONESHOT_STAGES: dict[str, type[Hparams]] = {"prune": OneshotPrune, "quantize": OneshotQuantize, "encode": OneshotEncode}

# A one-shot technique: fn(model, names, hp, calib, bits={name: bits}) changes ``model`` in place.
PRUNERS: Registry[Callable] = Registry("one-shot pruner")
QUANTIZERS: Registry[Callable] = Registry("one-shot quantizer")


@PRUNERS.register("magnitude")
def _magnitude(model: nn.Module, names: list[str], hp: OneshotPrune, calib, bits=None) -> None:
    from netpress.prune import prune

    if hp.pattern:
        raise ConfigError(f"pattern {hp.pattern!r} needs a data-aware pruner (wanda or sparsegpt), not magnitude")
    prune(model, hp.sparsity, score="magnitude", scope="local", names=names)


@QUANTIZERS.register("uniform")
def _uniform(model: nn.Module, names: list[str], hp: OneshotQuantize, calib, bits: dict[str, int]) -> None:
    from netpress.quantize import UniformSpec, quantize_weights

    specs = {n: _spec(hp, b) for n, b in bits.items()}
    quantize_weights(model, specs, names=names)


def _spec(hp: OneshotQuantize, bits: int):
    from netpress.quantize import UniformSpec

    return UniformSpec(bits=bits, symmetric=False, granularity=hp.granularity, group_size=hp.group_size,
                       axis=1 if hp.granularity == "group" else 0, calibration=hp.calibration)


@QUANTIZERS.register("kmeans")
def _kmeans(model: nn.Module, names: list[str], hp: OneshotQuantize, calib, bits: dict[str, int]) -> None:
    from netpress.quantize import share_weights

    share_weights(model, bits, names=names, iterations=50)


def _nm_fields(pattern: str) -> dict:
    nm = _nm(pattern) if pattern else None
    return {} if nm is None else {"n": nm[0], "m": nm[1]}


def _calibrated(model: nn.Module, names: list[str], calib, hp, **options) -> None:
    from netpress.calibrate import oneshot

    oneshot(model, calib, layers=names, quality=lambda m: 0.0, sequential=hp.sequential, **options)


@PRUNERS.register("wanda")
def _wanda(model: nn.Module, names: list[str], hp: OneshotPrune, calib, bits=None) -> None:
    from netpress.prune.wanda import WandaHparams

    _calibrated(model, names, calib, hp, prune=WandaHparams(sparsity=hp.sparsity, **_nm_fields(hp.pattern)))


@PRUNERS.register("sparsegpt")
def _sparsegpt(model: nn.Module, names: list[str], hp: OneshotPrune, calib, bits=None) -> None:
    from netpress.prune.sparsegpt import SparseGPTHparams

    _calibrated(model, names, calib, hp, prune=SparseGPTHparams(sparsity=hp.sparsity, **_nm_fields(hp.pattern)))


def _gptq(method: str):
    def run(model: nn.Module, names: list[str], hp: OneshotQuantize, calib, bits: dict[str, int]) -> None:
        from netpress.quantize.gptq import GPTQHparams

        group = hp.group_size or 128
        per_tensor = {n: GPTQHparams(bits=b, method=method, granularity=_granularity(model, n, hp.granularity, group),
                                     group_size=group, step=float(hp.step), act_order=hp.act_order,
                                     lam=float(hp.lam))
                      for n, b in bits.items()}
        if hp.awq:
            _awq(model, calib, per_tensor)
        _calibrated(model, names, calib, hp, quantize=per_tensor)
    return run


def _awq(model: nn.Module, calib, per_tensor: dict) -> None:
    from netpress.calibrate.awq import awq_scale, scalable

    plain = {n: hp for n, hp in per_tensor.items() if scalable(model, n)}
    if plain:
        model.netpress_awq = awq_scale(model, calib, plain)


def _granularity(model: nn.Module, name: str, granularity: str, group_size: int) -> str:
    """``group`` where ``group_size`` divides the tensor's inputs into several groups, else ``channel``."""
    from netpress.state import split_name

    if granularity != "group":
        return "channel"
    module_name, attr = split_name(name)
    w = getattr(model.get_submodule(module_name), attr)
    inputs = w[0].numel() if w.dim() > 1 else 0
    return "group" if w.dim() == 2 and inputs > group_size and inputs % group_size == 0 else "channel"


QUANTIZERS.register("gptq", _gptq("uniform"))
QUANTIZERS.register("gptq-kmeans", _gptq("kmeans"))
QUANTIZERS.register("gptq-ecsq", _gptq("ecsq"))


def stage_tensors(model: nn.Module, select) -> list[str]:
    """Plain names a stage's ``select`` picks (see :mod:`netpress.select`), in model order.

    A selector made only of module types the model does not have (``Embedding`` on a CNN) selects nothing, so a
    generic recipe skips that stage; a name pattern that matches nothing is an error.

    Raises:
        ConfigError: a pattern that matches nothing, naming the closest tensor names.

    Example:
        >>> stage_tensors(encoder, ["Linear", "!*.pooler.*"])
    """
    from netpress.select import as_selector, select_tensors, type_matches

    sel = as_selector(select)
    if not sel.include and not any(type_matches(m, sel.types) for m in model.modules()):
        return []
    return list(select_tensors(model, sel))


def bits_per_name(model: nn.Module, names: list[str], bits: int | dict) -> dict[str, int]:
    """``{name: bits}`` for ``names`` from an int or ``{selector: bits}`` (first matching key wins).

    Raises:
        ConfigError: a key that matches no weight, or a selected weight no key covers.
    """
    if not isinstance(bits, dict):
        return {n: int(bits) for n in names}
    out: dict[str, int] = {}
    for key, b in bits.items():
        for n in stage_tensors(model, key):
            if n in names:
                out.setdefault(n, int(b))
    missing = [n for n in names if n not in out]
    if missing:
        raise ConfigError(f"bits: no key covers {', '.join(missing[:3])}; add a '*' entry")
    return out


@dataclasses.dataclass
class OneshotResult:
    """What :func:`compress_pretrained` produced.

    Attributes:
        model: the compressed model (``netpress.load(out, model=...)`` gives bit-identical outputs).
        rows: one dict per stage (``stage``, ``seconds``, quality metrics), the first being the original model.
        out: the ``.netp`` file, if written.
        fp32_bytes: size of the original parameters in float32.
        bytes: size of the written file (0 if none).
        layers: per-tensor table of the file.
        report: the Markdown report, if written.
    """

    model: nn.Module
    rows: list[dict]
    out: Path | None
    fp32_bytes: int
    bytes: int
    layers: list[dict]
    report: Path | None = None

    def summary(self) -> dict:
        """Bytes, ratio vs fp32, total seconds and the final quality metrics."""
        quality = {k: v for k, v in self.rows[-1].items() if k not in ("stage", "seconds")}
        return {"bytes": self.bytes, "fp32_bytes": self.fp32_bytes,
                "ratio": self.fp32_bytes / self.bytes if self.bytes else None, **quality,
                "seconds": round(sum(r["seconds"] for r in self.rows), 1),
                "out": None if self.out is None else str(self.out)}


class OutputQuality:
    """Default quality function: agreement of the model's outputs with the original's on fixed inputs.

    Outputs are flattened per example; reports ``cosine_mean``, ``cosine_min`` and ``relative_mse``
    (``|y - y_ref|^2 / |y_ref|^2``). Reference outputs are computed at construction.

    Args:
        reference: the original model (call before compressing it).
        inputs: a re-iterable of model inputs: tensors, tuples (positional args) or dicts (keyword args).
    """

    def __init__(self, reference: nn.Module, inputs: Iterable):
        self.inputs = inputs
        self.reference = _outputs(reference, inputs)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        out = _outputs(model, self.inputs)
        cos = nn.functional.cosine_similarity(out, self.reference, dim=1)
        mse = ((out - self.reference) ** 2).sum() / (self.reference ** 2).sum().clamp(min=1e-30)
        return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "relative_mse": float(mse)}


@torch.no_grad()
def _outputs(model: nn.Module, inputs: Iterable) -> torch.Tensor:
    model.eval()
    outs = [call(model, batch).float().reshape(_batch_size(batch), -1).cpu() for batch in inputs]
    if not outs:
        raise ConfigError("no calibration inputs (the iterable is empty)")
    return torch.cat(outs)


def call(model: nn.Module, batch) -> torch.Tensor:
    """``model`` on one calibration batch: a dict as keyword arguments, a tuple/list as positional ones."""
    device = next(model.parameters()).device
    if isinstance(batch, dict):
        return model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
    if isinstance(batch, (tuple, list)):
        return model(*[v.to(device) if torch.is_tensor(v) else v for v in batch])
    return model(batch.to(device))


def _batch_size(batch) -> int:
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])


def load_pretrained_recipe(recipe: str | Path | Recipe) -> Recipe:
    """A one-shot recipe by built-in name (:data:`PRETRAINED`), YAML path, or an already parsed :class:`Recipe`."""
    if isinstance(recipe, Recipe):
        return recipe
    return load_recipe(recipe, builtin=PRETRAINED, stage_types=ONESHOT_STAGES)


def compress_pretrained(model: nn.Module, calib_inputs: Iterable, recipe: str | Path | Recipe = "pretrained-4bit", *,
                        out: str | Path | None = None, quality: Quality | None = None,
                        report: str | Path | None = None, title: str = "netpress one-shot compression") -> OneshotResult:
    """Compress a pretrained model one-shot (no training) from unlabeled calibration inputs.

    Args:
        model: any module (changed in place); if it has a ``netpress_architecture`` dict (e.g.
            :class:`netpress.hf.SentenceEncoder`), that is stored in the file's recipe so loaders can rebuild it.
        calib_inputs: a re-iterable of model inputs (tensors, tuples, or dicts such as tokenizer output).
        recipe: ``pretrained-8bit``, ``pretrained-4bit``, ``pretrained-balanced``, ``pretrained-max``, a YAML path or a
            :class:`Recipe`.
        out: the ``.netp`` file to write (the recipe's encode stage; default coder ANS).
        quality: ``fn(model) -> {metric: value}`` measured after every stage (default: :class:`OutputQuality` on
            ``calib_inputs``: output cosine and relative MSE against the original model).
        report: Markdown report path (default: ``<out stem>_report.md`` next to ``out``).
        title: the report's title.

    Returns:
        :class:`OneshotResult`; ``summary()`` gives bytes, ratio vs fp32 and the final quality.

    Raises:
        RecipeError / ConfigError: unknown recipe, bad option, or a selector matching nothing; before any work.

    Example:
        >>> result = compress_pretrained(encoder, TextInputs(sentences, tokenizer), "pretrained-4bit", out="m.netp")
        >>> result.summary()["ratio"]
    """
    recipe = load_pretrained_recipe(recipe)
    plan = _plan(model, recipe)  # every selector resolved before any change
    start = time.perf_counter()
    quality = quality or OutputQuality(model, calib_inputs)
    rows = [{"stage": "original", "seconds": round(time.perf_counter() - start, 1), **quality(model)}]
    for stage, names, bits in plan:
        if stage.kind == "encode":
            continue
        start = time.perf_counter()
        technique = (PRUNERS if stage.kind == "prune" else QUANTIZERS).get(stage.hparams.method)
        technique(model, names, stage.hparams, calib_inputs, bits=bits)
        seconds = time.perf_counter() - start
        rows.append({"stage": f"{stage.kind}:{stage.hparams.method}", "seconds": round(seconds, 1), **quality(model)})
    fp32 = 4 * sum(v.numel() for v in _plain_floats(model))
    result = OneshotResult(model, rows, None, fp32, 0, [])
    if out is not None:
        _encode(result, recipe, Path(out))
        result.report = _write_report(result, recipe, Path(report) if report else
                                      Path(out).with_name(Path(out).stem + "_report.md"), title)
    return result


def compress_hf(folder: str | Path, calib_file: str | Path, recipe: str | Path | Recipe = "pretrained-4bit", *,
                out: str | Path | None = None, calib_limit: int = 512, eval_file: str | Path | None = None,
                batch_size: int = 32, max_length: int = 128, report: str | Path | None = None) -> OneshotResult:
    """:func:`compress_pretrained` on a Hugging Face / sentence-transformers folder with calibration text.

    Args:
        folder: the model folder (loaded offline, see :func:`netpress.hf.load_folder`).
        calib_file: calibration sentences, one per line (the first ``calib_limit`` are used).
        recipe: a pretrained recipe name, YAML path or :class:`Recipe`.
        out: the ``.netp`` file (it records the model config, so :func:`netpress.hf.load` rebuilds it).
        calib_limit: most calibration sentences.
        eval_file: held-out sentences for the quality (embedding cosine vs the original); default: the calibration
            sentences.
        batch_size: sentences per batch.
        max_length: token truncation length.
        report: Markdown report path (default next to ``out``).

    Returns:
        :class:`OneshotResult` (quality: ``cosine_mean``, ``cosine_min``, ``nn_agreement``, ``spearman``).

    Raises:
        ConfigError / DataError / RecipeError: missing folder, no sentences, unknown recipe; before any work.

    Example:
        >>> compress_hf("all-MiniLM-L6-v2", "calib.txt", "pretrained-4bit", out="minilm.netp").summary()
    """
    from netpress import hf

    recipe = load_pretrained_recipe(recipe)
    hf.check_folder(folder)
    sentences = hf.read_sentences(calib_file, limit=calib_limit)
    held_out = hf.read_sentences(eval_file) if eval_file is not None else sentences
    model, tokenizer = hf.load_folder(folder)
    calib = hf.TextInputs(sentences, tokenizer, batch_size, max_length)
    quality = hf.EmbeddingQuality(model, hf.TextInputs(held_out, tokenizer, batch_size, max_length))
    return compress_pretrained(model, calib, recipe, out=out, quality=quality, report=report,
                               title=f"{recipe.name}: {Path(folder).name}")


def _plan(model: nn.Module, recipe: Recipe) -> list[tuple]:
    plan = []
    for i, stage in enumerate(recipe.stages):
        if stage.kind == "encode":
            plan.append((stage, [], {}))
            continue
        try:
            names = stage_tensors(model, stage.hparams.select)
            bits = bits_per_name(model, names, stage.hparams.bits) if stage.kind == "quantize" and names else {}
        except ConfigError as exc:
            raise RecipeError(f"stages[{i}].{stage.kind}: {exc}") from None
        if names:  # a stage that selects only module types the model lacks does nothing
            plan.append((stage, names, bits))
    return plan


def _plain_floats(model: nn.Module) -> list[torch.Tensor]:
    """The float tensors of the plain state, a parametrized one as its original (same shape; nothing decoded)."""
    from netpress.state import plain_names

    state = model.state_dict(keep_vars=True)
    out = []
    for name in plain_names(model):
        if name not in state:
            mname, _, attr = name.rpartition(".")
            state[name] = (model.get_submodule(mname) if mname else model).parametrizations[attr].original
        out.append(state[name])
    return [v for v in out if v.is_floating_point()]


def _encode(result: OneshotResult, recipe: Recipe, out: Path) -> None:
    from netpress.encode import save

    coder = next((s.hparams.coder for s in recipe.stages if s.kind == "encode"), OneshotEncode().coder)
    arch = getattr(result.model, "netpress_architecture", None)
    stored = {**recipe.to_dict(), **({"architecture": arch} if isinstance(arch, dict) else {})}
    metrics = {k: v for k, v in result.rows[-1].items() if k != "stage"}
    start = time.perf_counter()
    report = save(result.model, out, recipe=stored, metrics=metrics, coder=coder)
    result.rows.append({**result.rows[-1], "stage": "encode", "seconds": round(time.perf_counter() - start, 1)})
    result.out, result.bytes, result.layers = out, report["file_bytes"], report["tensors"]


def _write_report(result: OneshotResult, recipe: Recipe, path: Path, title: str) -> Path:
    s = result.summary()
    keys = [k for k in result.rows[0] if k not in ("stage", "seconds")]
    lines = [f"# {title}", "", f"Recipe `{recipe.name}`: {recipe.description}", "",
             f"File `{result.out}`: {s['bytes']:,} bytes, fp32 {s['fp32_bytes']:,} bytes, "
             f"**{s['ratio']:.2f}x** smaller; {s['seconds']} s.", "",
             "| stage | seconds | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    lines += [f"| {r['stage']} | {r['seconds']} | " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in result.rows]
    lines += ["", "| tensor | weights | bits | kept | bytes | ratio |", "|---|---|---|---|---|---|"]
    lines += [f"| {t['name']} | {t['weights']} | {t['bits']} | {_fmt(t.get('kept_fraction'))} | {t['total_bytes']} "
              f"| {t['ratio']:.1f}x |" for t in result.layers]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v)


__all__ = ["PRETRAINED", "ONESHOT_STAGES", "PRUNERS", "QUANTIZERS", "OneshotPrune", "OneshotQuantize", "OneshotEncode",
           "OneshotResult", "OutputQuality", "compress_pretrained", "compress_hf", "load_pretrained_recipe", "stage_tensors",
           "bits_per_name", "call"]
