"""One entry point for pruning a trained model: typed options checked before any work, then unstructured pruning
under a schedule (one-shot, iterative with fine-tuning or rewinding, AGP) or structured surgery.

Example:
    >>> hp = PruneHparams(sparsity=0.9, schedule="iterative:3", scope="global")
    >>> check_prune(net, hp)                        # raises ConfigError before anything changes
    >>> result = prune_model(net, data, hp, retrain_hp=TrainingHparams(steps="2ep", lr=0.005))
    >>> result["model"]                             # masks folded in with netpress.prune.strip
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.prune.core import compute_masks
from netpress.prune.masks import strip
from netpress.prune.schedules import AGP, ScheduleHparams, iterative_prune, parse_schedule, training_iterations
from netpress.prune.scope import check_fraction
from netpress.prune.scores import resolve_score
from netpress.train import TrainingHparams, train


@dataclasses.dataclass(frozen=True)
class PruneHparams(Hparams):
    """What :func:`prune_model` does.

    Attributes:
        sparsity: target fraction of zeros in [0, 1) (structured: fraction of channels removed per group).
        score: ``magnitude``, ``random``, ``gradient``, ``taylor``, ``snip`` (structured: ``l1``, ``l2``, ...).
        scope: ``global`` or ``local`` ranking.
        schedule: ``oneshot``, ``iterative:N`` or ``agp``.
        layer_sparsity: own targets ``{plain_name: fraction}``.
        exclude: plain names left dense.
        allow_collapse: let global pruning empty a whole layer.
        structured: remove whole neurons/filters and thin the model (one-shot only).
        retrain_mode: ``finetune``, ``lr-rewind`` or ``weight-rewind``.
    """

    sparsity: float = 0.9
    score: str = "magnitude"
    scope: str = "global"
    schedule: str = "oneshot"
    layer_sparsity: dict = dataclasses.field(default_factory=dict)
    exclude: tuple = ()
    allow_collapse: bool = False
    structured: bool = False
    retrain_mode: str = "finetune"

    def validate(self) -> None:
        check_fraction(self.sparsity)
        resolve_score(self.score)
        require(self.scope in ("global", "local"), f"unknown scope {self.scope!r}; known: global, local")
        for name, value in self.layer_sparsity.items():
            check_fraction(value, f"layer sparsity of {name}")
        self.schedule_hparams()
        require(not self.structured or self.schedule == "oneshot",
                "structured pruning runs one-shot surgery; use schedule 'oneshot' (fine-tune with a retraining length)")

    def schedule_hparams(self) -> ScheduleHparams:
        return parse_schedule(self.schedule, retrain=self.retrain_mode)

    def wants_retraining(self) -> bool:
        """Iterative and AGP schedules always train; one-shot only when a retraining length is given."""
        return self.schedule_hparams().kind in ("iterative", "agp")


def check_prune(model: nn.Module, hp: PruneHparams) -> None:
    """Every check that needs the model (tensor names, per-layer targets), on an untrained copy of its
    architecture, so a typo fails before training.

    Raises:
        ConfigError: unknown names, or targets that do not fit the model.
    """
    if not hp.structured:
        compute_masks(model, 0.0, score="magnitude", scope=hp.scope, layer_sparsity=hp.layer_sparsity or None,
                      exclude=list(hp.exclude))


def prune_model(model: nn.Module, data, hp: PruneHparams, *, retrain_hp: TrainingHparams | None = None,
                rewind_state: dict[str, torch.Tensor] | None = None, device: str = "auto") -> dict:
    """Prune ``model`` (changed in place or replaced by its thinned copy) and retrain as ``hp`` says.

    Args:
        model: a trained model.
        data: :class:`~netpress.data.DataSplits`.
        hp: what to do.
        retrain_hp: retraining; required for ``iterative`` and ``agp`` schedules.
        rewind_state: initial weights (plain names) for ``weight-rewind``.
        device: training device.

    Returns:
        ``{"model": pruned model with masks folded in, "schedule": ..., "rounds"/"groups"/"skipped": details}``.

    Raises:
        ConfigError: a schedule that trains without ``retrain_hp``, or ``weight-rewind`` without ``rewind_state``.

    Example:
        >>> prune_model(net, data, PruneHparams(sparsity=0.5, structured=True))["model"]
    """
    sched = hp.schedule_hparams()
    if sched.kind in ("iterative", "agp") and retrain_hp is None:
        raise ConfigError(f"schedule {hp.schedule!r} retrains: give retraining settings")
    if hp.structured:
        result = _structured(model, data, hp, retrain_hp, device)
    elif sched.kind == "agp":
        result = _agp(model, data, hp, retrain_hp, device)
    else:
        if sched.retrain == "weight-rewind" and rewind_state is None:
            raise ConfigError("weight-rewind needs the initial weights (rewind_state)")
        hist = iterative_prune(model, data, hp.sparsity, rounds=sched.rounds, retrain_hp=retrain_hp,
                               retrain=sched.retrain, rewind_state=rewind_state if sched.retrain == "weight-rewind"
                               else None, device=device, **_mask_kwargs(hp))
        result = {"model": model, "schedule": hp.schedule, "rounds": hist}
    result["model"] = strip(result["model"])
    return result


def _mask_kwargs(hp: PruneHparams) -> dict:
    return dict(score=hp.score, scope=hp.scope, layer_sparsity=hp.layer_sparsity or None, exclude=list(hp.exclude),
                allow_collapse=hp.allow_collapse)


def _agp(model, data, hp, retrain_hp, device) -> dict:
    total = training_iterations(retrain_hp, data)
    agp = AGP(hp.sparsity, start=0, end=max(2, int(0.75 * total)), every=max(1, total // 40),
              data=data if hp.score not in ("magnitude", "random") else None, **_mask_kwargs(hp))
    train(agp.attach(model), data, retrain_hp, callbacks=[agp], device=device)
    return {"model": model, "schedule": "agp"}


def _structured(model, data, hp, retrain_hp, device) -> dict:
    from netpress.prune.surgery import prune_structured

    res = prune_structured(model, hp.sparsity, data.test.x[:16], score=hp.score if hp.score != "magnitude" else "l1",
                           exclude=list(hp.exclude), data=data)
    if retrain_hp is not None:
        train(res.model, data, retrain_hp, device=device)
    return {"model": res.model, "schedule": "structured", "groups": res.plan.summary(),
            "skipped": dict(res.plan.skipped)}
