"""Recipes: a validated list of stages (train, prune, quantize, distill, lowrank, encode) read from YAML.

Every stage's options map onto a typed hyperparameter dataclass; an unknown key or a bad value is reported with
the path of the offending key (``stages[1].prune.sparsity: ...``).

Example:
    >>> recipe = load_recipe("deep-compression")
    >>> [s.kind for s in recipe.stages]
    ['prune', 'quantize', 'encode']
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any


from netpress import safeyaml
from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.train import TrainingHparams

SCHEDULES = ("oneshot", "iterative", "sensitivity", "budget")
QUANT_METHODS = ("kmeans", "uniform", "sensitivity", "ecsq")


class RecipeError(ConfigError):
    """A recipe is malformed; the message starts with the path of the offending key."""


def _fraction(x: Any) -> bool:
    return isinstance(x, (int, float)) and 0 <= x < 1


@dataclasses.dataclass(frozen=True)
class TrainStage(Hparams):
    """Dense training (skipped when the pipeline starts ``--from`` a trained run). Fields: TrainingHparams overrides."""

    overrides: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        TrainingHparams().replace(**self.overrides)


@dataclasses.dataclass(frozen=True)
class PruneStage(Hparams):
    """Pruning with retraining.

    Attributes:
        schedule: ``iterative`` (``rounds`` prune-retrain rounds towards the targets, Han 2015), ``oneshot``,
            ``sensitivity`` (per-layer targets chosen from a sensitivity scan within ``accuracy_budget``), or
            ``budget`` (prune ``prune_fraction`` of the surviving weights per round, each round retrained from the
            last, until two rounds in a row have a validation drop from the model entering the pipeline over
            ``accuracy_budget`` beyond doubt, at most ``rounds`` rounds; then keep the sparsest round whose drop, smoothed by a
            monotone fit over the rounds, fits the budget: :mod:`netpress.pipeline.budget`).
        sparsity: global target fraction of zeros (for layers not in ``layers``); for ``budget``, the cap.
        layers: per-layer targets ``{name pattern, module type or kind ('conv', 'fc', 'embedding'): fraction}``
            (see :func:`layer_value`); a key that matches no layer is an error before any work.
        scope: ``global`` or ``local`` ranking for the layers that follow ``sparsity``.
        score: a registered pruning score.
        rounds: prune-retrain rounds (iterative).
        retrain: TrainingHparams overrides for each retraining (Han: lr / 10).
        accuracy_budget: allowed accuracy drop, a fraction (0.005 = 0.5 pt): per layer for ``sensitivity``; for
            ``budget``, the validation drop from the model entering the pipeline.
        prune_fraction: for ``budget``: fraction of the surviving weights pruned per round.
        confidence: for ``budget``: standard errors of the paired validation difference (input model vs pruned
            model, same examples) added to the smoothed drop before it is compared with the budget (and taken off
            a round's drop to decide that it is over); 0 compares the raw drop, 1 keeps a round only if the budget
            holds with about 84% one-sided confidence.
        ramp: for ``budget``: the fraction of each round's retraining over which that round's pruning is spread
            (AGP's cubic ramp, Zhu & Gupta 2017, from the round's starting sparsity to its target); 0 prunes
            all of it before the retraining.
        control: for ``budget``: first retrain the input model like one round with nothing pruned (a control) and
            measure this and every later stage's budget from whichever of the input model and the control is
            more accurate on the validation data, so accuracy that the extra training alone adds on validation
            data (it need not carry over to test data) is not spent as budget.
    """

    schedule: str = "iterative"
    sparsity: float = 0.9
    layers: dict = dataclasses.field(default_factory=dict)
    scope: str = "local"
    score: str = "magnitude"
    rounds: int = 3
    retrain: dict = dataclasses.field(default_factory=dict)
    accuracy_budget: float = 0.005
    prune_fraction: float = 0.4
    confidence: float = 1.0
    ramp: float = 0.0
    control: bool = False

    def validate(self) -> None:
        require(self.schedule in SCHEDULES, f"schedule: unknown {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        require(_fraction(self.sparsity), f"sparsity: must be a fraction in [0, 1), got {self.sparsity!r}")
        for k, v in self.layers.items():
            require(_fraction(v), f"layers.{k}: must be a fraction in [0, 1), got {v!r}")
        from netpress.prune import SCOPES, SCORES

        require(self.scope in SCOPES, f"scope: must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        require(self.score in SCORES, f"score: unknown {self.score!r}; known: {', '.join(SCORES.names())}")
        require(isinstance(self.rounds, int) and self.rounds >= 1, f"rounds: must be an integer >= 1, got {self.rounds!r}")
        require(0 < self.accuracy_budget < 1, f"accuracy_budget: must be in (0, 1), got {self.accuracy_budget!r}")
        require(isinstance(self.prune_fraction, (int, float)) and 0 < self.prune_fraction < 1,
                f"prune_fraction: must be a fraction in (0, 1), got {self.prune_fraction!r}")
        _check_confidence(self.confidence)
        require(self.schedule != "budget" or not self.layers,
                "layers: not used by schedule budget (it prunes by score under the scope; set sparsity as the cap)")
        _check_overrides("retrain", self.retrain)
        require(isinstance(self.ramp, (int, float)) and not isinstance(self.ramp, bool) and 0 <= self.ramp <= 1,
                f"ramp: must be a fraction in [0, 1], got {self.ramp!r}")
        require(not self.ramp or self.schedule == "budget", f"ramp: only for schedule budget, not {self.schedule!r}")
        require(not self.ramp or bool(self.retrain), "ramp: spreads pruning over the retraining: give retrain")
        require(isinstance(self.control, bool), f"control: must be true or false, got {self.control!r}")
        require(not self.control or self.schedule == "budget",
                f"control: only for schedule budget, not {self.schedule!r}")
        require(not self.control or bool(self.retrain), "control: is the input model retrained like one round: "
                "give retrain")


@dataclasses.dataclass(frozen=True)
class QuantizeStage(Hparams):
    """Weight sharing / quantization with centroid fine-tuning.

    Attributes:
        method: ``kmeans`` (Deep Compression), ``uniform``, ``sensitivity`` (per-layer bits from a scan), or
            ``ecsq`` (entropy-constrained levels: each weight goes to the level minimising squared error plus
            ``lam`` x its code length; ``bits`` caps the number of levels).
        bits: an int for every layer, or ``{name pattern, module type or kind ('conv', 'fc', 'embedding'): bits}``;
            a key that matches no layer is an error before any work.
        init: k-means centroid init: ``linear``, ``forgy`` (random) or ``density``.
        finetune: TrainingHparams overrides for centroid fine-tuning; ``{}`` = no fine-tuning.
        min_bits: lowest bit width tried by ``sensitivity``.
        accuracy_budget: allowed accuracy drop (fraction): per layer for ``sensitivity``; for ``ecsq`` with a
            list of ``lam``, the validation drop from the model entering the pipeline.
        lam: for ``ecsq``: the rate weight relative to each tensor's weight variance (``lam * var(w)`` squared
            units per bit; 0 = k-means), or a list searched in order, most aggressive first: the first whose
            fine-tuned model stays within ``accuracy_budget`` is kept (the last one if none does).
        biases: bits of per-tensor uniform codes for the biases of the quantized layers; 0 keeps them float.
        confidence: for the ``lam`` search: as :class:`PruneStage`'s.
        calibration: for ``ecsq``: training examples whose layer inputs guide the rounding (GPTQ-style error
            feedback, layer by layer, then centroids refitted for the least layer-output error; see
            :mod:`netpress.quantize.gptq`); 0 = each weight to its own best level.
        qat: for ``ecsq``: TrainingHparams overrides for quantization-aware training before the rounding: the
            forward pass uses each weight's ECSQ level at this ``lam``, gradients pass straight through to the
            float weights, the levels are re-solved every epoch (:mod:`netpress.quantize.ecsq_qat`); ``{}`` =
            none.
    """

    method: str = "kmeans"
    bits: Any = 5
    init: str = "linear"
    finetune: dict = dataclasses.field(default_factory=dict)
    min_bits: int = 2
    accuracy_budget: float = 0.003
    lam: Any = 0.0
    biases: int = 0
    confidence: float = 1.0
    calibration: int = 0
    qat: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(self.method in QUANT_METHODS, f"method: unknown {self.method!r}; known: {', '.join(QUANT_METHODS)}")
        bits = self.bits if isinstance(self.bits, dict) else {"*": self.bits}
        for k, v in bits.items():
            require(isinstance(v, int) and 1 <= v <= 16, f"bits{'' if k == '*' else '.' + k}: must be an integer in 1-16, got {v!r}")
        from netpress.quantize.kmeans import INITS

        require(self.init in INITS, f"init: must be one of {', '.join(INITS.names())}, got {self.init!r}")
        require(isinstance(self.min_bits, int) and 1 <= self.min_bits <= 8, f"min_bits: must be in 1-8, got {self.min_bits!r}")
        require(0 < self.accuracy_budget < 1, f"accuracy_budget: must be in (0, 1), got {self.accuracy_budget!r}")
        lams = self.lam if isinstance(self.lam, list) else [self.lam]
        require(bool(lams) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < float("inf")
                                   for x in lams), f"lam: must be a number >= 0 or a non-empty list of them, got {self.lam!r}")
        require(isinstance(self.lam, (int, float)) or self.method == "ecsq", f"lam: a list is searched only by method ecsq")
        require(isinstance(self.biases, int) and not isinstance(self.biases, bool) and 0 <= self.biases <= 16,
                f"biases: must be 0 (float) or bits in 1-16, got {self.biases!r}")
        require(isinstance(self.calibration, int) and not isinstance(self.calibration, bool) and self.calibration >= 0,
                f"calibration: must be a number of examples >= 0, got {self.calibration!r}")
        require(not self.calibration or self.method == "ecsq", "calibration: used only by method ecsq")
        require(not self.qat or self.method == "ecsq", "qat: used only by method ecsq")
        _check_confidence(self.confidence)
        _check_overrides("finetune", self.finetune)
        _check_overrides("qat", self.qat)


@dataclasses.dataclass(frozen=True)
class EncodeStage(Hparams):
    """Writing the ``.netp`` file. ``coder``: ``huffman`` (the paper), ``ans``, ``context`` (the context coder where
    it beats ANS), ``auto`` (smallest per stream), ``packed`` (fixed-length). ``codebook_dtype``: ``auto``
    (float16 where the decoded weights stay bit-identical), ``float32``, or ``float16``: codebooks are rounded to
    float16 values first (affine scales are left exact), so the model measured after this stage is the one the
    file decodes to."""

    coder: str = "huffman"
    codebook_dtype: str = "auto"

    def validate(self) -> None:
        from netpress.encode.streams import CODERS
        from netpress.encode.tensors import BOOK_DTYPES

        require(self.coder in CODERS, f"coder: unknown {self.coder!r}; known: {', '.join(CODERS)}")
        require(self.codebook_dtype in BOOK_DTYPES,
                f"codebook_dtype: unknown {self.codebook_dtype!r}; known: {', '.join(BOOK_DTYPES)}")


@dataclasses.dataclass(frozen=True)
class DistillStage(Hparams):
    """Use a distillation loss (teacher = the model entering the pipeline) in later retraining/fine-tuning."""

    temperature: float = 4.0
    alpha: float = 0.5
    mode: str = "kd"

    def validate(self) -> None:
        require(self.temperature > 0, f"temperature: must be > 0, got {self.temperature!r}")
        require(0 <= self.alpha <= 1, f"alpha: must be in [0, 1], got {self.alpha!r}")
        from netpress.distill.hparams import MODES

        require(self.mode in MODES, f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")


@dataclasses.dataclass(frozen=True)
class LowRankStage(Hparams):
    """Truncated-SVD factorisation of Linear layers (``energy`` kept), then optional fine-tuning."""

    energy: float = 0.95
    finetune: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(0 < self.energy <= 1, f"energy: must be in (0, 1], got {self.energy!r}")
        _check_overrides("finetune", self.finetune)


STAGE_TYPES: dict[str, type[Hparams]] = {
    "train": TrainStage, "prune": PruneStage, "quantize": QuantizeStage, "encode": EncodeStage,
    "distill": DistillStage, "lowrank": LowRankStage,
}


def _check_confidence(z) -> None:
    require(isinstance(z, (int, float)) and not isinstance(z, bool) and 0 <= z <= 5,
            f"confidence: must be a number of standard errors in [0, 5], got {z!r}")


def _check_overrides(key: str, overrides: dict) -> None:
    require(isinstance(overrides, dict), f"{key}: must be a mapping of training options")
    try:
        TrainingHparams().replace(**overrides)
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(TrainingHparams))
        raise ConfigError(f"{key}: {exc}; known: {known}") from None
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc}") from None


@dataclasses.dataclass(frozen=True)
class Stage:
    kind: str
    hparams: Hparams


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named, validated list of stages."""

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    source: dict = dataclasses.field(default_factory=dict, compare=False)
    optional_kinds: tuple[str, ...] = ()  # layer kinds whose rules may find no layer (a recipe for MLPs and CNNs)

    def digest(self) -> str:
        """Hash of the stages' non-default settings (names and comments do not matter)."""
        payload = [[s.kind, s.hparams.non_default()] for s in self.stages]
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "stages": [{s.kind: s.hparams.non_default()} for s in self.stages]}


def parse_recipe(doc: Any, name: str = "custom", stage_types: dict[str, type[Hparams]] | None = None) -> Recipe:
    """Validate a recipe document (already loaded from YAML/JSON).

    ``stage_types`` replaces :data:`STAGE_TYPES` (e.g. the one-shot stages of :mod:`netpress.pipeline.oneshot`).

    Raises:
        RecipeError: naming the path of the first offending key.
    """
    if not isinstance(doc, dict):
        raise RecipeError(f"recipe {name}: must be a mapping with a 'stages' list")
    unknown = sorted(set(doc) - {"name", "description", "stages", "optional_kinds"})
    if unknown:
        raise RecipeError(f"{unknown[0]}: unknown key; known: name, description, stages, optional_kinds")
    optional = doc.get("optional_kinds", [])
    if not isinstance(optional, list) or not set(optional) <= set(KINDS):
        raise RecipeError(f"optional_kinds: must be a list of layer kinds ({', '.join(KINDS)}), got {optional!r}")
    stages_doc = doc.get("stages")
    if not isinstance(stages_doc, list) or not stages_doc:
        raise RecipeError("stages: must be a non-empty list")
    stages = [_parse_stage(i, s, stage_types or STAGE_TYPES) for i, s in enumerate(stages_doc)]
    kinds = [s.kind for s in stages]
    if "encode" in kinds and kinds.index("encode") != len(kinds) - 1:
        raise RecipeError(f"stages[{kinds.index('encode')}].encode: must be the last stage")
    return Recipe(str(doc.get("name", name)), tuple(stages), str(doc.get("description", "")), doc, tuple(optional))


def _parse_stage(i: int, entry: Any, types: dict[str, type[Hparams]] = STAGE_TYPES) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(entry, dict) or len(entry) != 1:
        raise RecipeError(f"{where}: each stage is a mapping with one key, the stage kind ({', '.join(types)})")
    (kind, options), = entry.items()
    if kind not in types:
        raise RecipeError(f"{where}.{kind}: unknown stage; known: {', '.join(types)}")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise RecipeError(f"{where}.{kind}: options must be a mapping")
    cls = types[kind]
    if cls is TrainStage:
        options = {"overrides": options}
    known = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in known:
            raise RecipeError(f"{where}.{kind}.{key}: unknown key; known: {', '.join(known)}")
    _check_mappings(f"{where}.{kind}", cls, options)
    try:
        return Stage(kind, cls(**options))
    except ConfigError as exc:
        raise RecipeError(f"{where}.{kind}.{exc}".replace(".overrides.", ".")) from None


def _check_mappings(where: str, cls, options: dict) -> None:
    """Options whose default is a mapping (``layers``, ``retrain``, ...) must be mappings."""
    for f in dataclasses.fields(cls):
        value = options.get(f.name)
        if f.name in options and f.default_factory is dict and not isinstance(value, dict):
            shown = repr(value)[:60]
            raise RecipeError(f"{where}.{f.name}: must be a mapping (name: value), got {type(value).__name__} {shown}")


BUILTIN = ("deep-compression", "prune-only", "quantize-only", "max", "budget")


def load_recipe(ref: str | Path, builtin: tuple[str, ...] = BUILTIN,
                stage_types: dict[str, type[Hparams]] | None = None) -> Recipe:
    """A built-in recipe by name, or a YAML file by path.

    ``builtin`` / ``stage_types``: the recipe family (default: the training pipeline's; the one-shot pipeline
    passes its own).

    Raises:
        RecipeError: unknown name, unreadable file, invalid YAML or invalid content.
    """
    path = Path(ref)
    if str(ref) in builtin:
        text = resources.files("netpress.pipeline.recipes").joinpath(f"{ref}.yaml").read_text()
        name = str(ref)
    elif path.is_file():
        try:
            text, name = path.read_bytes(), path.stem
        except OSError as exc:
            raise RecipeError(f"recipe {path}: cannot read it ({exc.strerror})") from None
    else:
        raise RecipeError(f"no recipe {str(ref)!r}: built-in recipes are {', '.join(builtin)}, or give a YAML file path")
    try:
        doc = safeyaml.load(text)
    except safeyaml.YamlError as exc:
        raise RecipeError(f"recipe {name}: {exc}") from None
    return parse_recipe(doc, name, stage_types)


SPECIAL_KEYS = ("first", "last", "*")
KINDS = ("conv", "fc", "embedding")


def layer_value(table: Any, layer: "LayerRef", default: Any = None) -> Any:
    """Resolve a per-layer value from a recipe table.

    A number applies to every layer. A mapping is searched in this order: a pattern on the plain tensor or module
    name (glob ``'classifier.*'``, ``'re:.*dense$'``, an exact name) or a module type (``Linear``, ``Embedding``,
    ``Conv*``), in table order; ``kind[i]`` (``conv[0]`` = the first conv); ``first`` / ``last`` (first / last
    layer); the kind (``conv``, ``fc`` or ``embedding``); ``*``; else ``default``.
    """
    if not isinstance(table, dict):
        return table
    for pattern, value in table.items():
        if _is_pattern(pattern) and key_matches(pattern, layer):
            return value
    for key in (f"{layer.kind}[{layer.kind_index}]", "first" if layer.index == 0 else None,
                "last" if layer.is_last else None, layer.kind, "*"):
        if key is not None and key in table:
            return table[key]
    return default


def _is_pattern(key: str) -> bool:
    return key not in SPECIAL_KEYS and key not in KINDS and not _kind_index(key)


def _kind_index(key: str) -> bool:
    kind, _, rest = key.partition("[")
    return kind in KINDS and rest.endswith("]") and rest[:-1].isdigit()


def key_matches(key: str, layer: "LayerRef") -> bool:
    """Whether a recipe table key selects ``layer`` (see :func:`layer_value`)."""
    from netpress.select import TYPE_ALIASES, is_type_token, matches

    if key == "*" or key == layer.kind or key == f"{layer.kind}[{layer.kind_index}]":
        return True
    if key in ("first", "last"):
        return layer.index == 0 if key == "first" else layer.is_last
    if key in KINDS or _kind_index(key):
        return False
    if is_type_token(key):
        from fnmatch import fnmatchcase

        return any(fnmatchcase(t, p) for t in layer.types for p in TYPE_ALIASES.get(key, (key,)))
    return matches(key, layer.name, layer.name.rpartition(".")[0])


def check_layer_keys(recipe: "Recipe", model) -> None:
    """Every per-layer key of every stage (``layers``, ``bits``) must select at least one layer of ``model``.

    A recipe written for several architectures (the built-in LeNet recipes) lists ``optional_kinds``: rules of
    those kinds (``conv``, ``conv[0]``) are skipped on a model with no layer of that kind (``conv`` on an MLP),
    and checked as usual otherwise (``conv[5]`` on a model with two convs is an error).

    Raises:
        RecipeError: ``stages[i].<kind>.<field>.<key>: matches no layer; closest: ...`` before any work.
    """
    from netpress.select import closest

    refs = layer_refs(model)
    for i, stage in enumerate(recipe.stages):
        for field in ("layers", "bits"):
            table = getattr(stage.hparams, field, None)
            if not isinstance(table, dict):
                continue
            kinds = {r.kind for r in refs}
            for key in table:
                if not _is_pattern(str(key)) and str(key).partition("[")[0] in set(recipe.optional_kinds) - kinds:
                    continue  # a rule for a layer family this model does not have
                if not any(key_matches(str(key), r) for r in refs):
                    names = [r.name for r in refs] + [f"{r.kind}[{r.kind_index}]" for r in refs] + list(KINDS)
                    raise RecipeError(f"stages[{i}].{stage.kind}.{field}.{key}: matches no layer of "
                                      f"{type(model).__name__}; {closest(str(key), names)}")


@dataclasses.dataclass(frozen=True)
class LayerRef:
    """Where a selected tensor sits: its plain name, kind (``conv``/``fc``/``embedding``), positions, and the
    owning module's class names (for type keys such as ``Linear``)."""

    name: str
    kind: str
    index: int
    kind_index: int
    is_last: bool
    types: tuple[str, ...] = ()


def layer_refs(model) -> list[LayerRef]:
    """The Linear, Conv, HF Conv1D and Embedding weights of ``model`` in order, as :class:`LayerRef`."""
    from netpress.select import select_tensors, type_matches

    def kind(m) -> str:
        return "conv" if type_matches(m, ("conv",)) else "embedding" if type_matches(m, ("embedding",)) else "fc"

    try:
        found = [(n, kind(m), tuple(c.__name__ for c in type(m).__mro__)) for n, (m, _a) in select_tensors(model).items()]
    except ConfigError:
        found = []
    counts: dict[str, int] = {}
    refs = []
    for i, (name, k, types) in enumerate(found):
        refs.append(LayerRef(name, k, i, counts.get(k, 0), i == len(found) - 1, types))
        counts[k] = counts.get(k, 0) + 1
    return refs


__all__ = ["Recipe", "RecipeError", "Stage", "STAGE_TYPES", "PruneStage", "QuantizeStage", "EncodeStage",
           "TrainStage", "DistillStage", "LowRankStage", "parse_recipe", "load_recipe", "layer_value", "layer_refs", "LayerRef", "BUILTIN",
           "check_layer_keys", "key_matches"]
