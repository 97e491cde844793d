"""A lottery-ticket experiment: replicates of IMP levels, control branches and LMC analyses, as idempotent stages.

Layout (open_lth-like: levels hold a main line and branches that share the level's trained parent)::

    lottery_<hash>/
      hparams.json                 every setting; the hash covers those that change numbers
      results.json, report.md, *.png
      replicate_0/
        init.pt                    the initial weights (plain names)
        level_00/ticket/           the dense network (snapshots of the rewind points live in its final.pt)
        level_01/mask.pt           the level's IMP mask, from level 00's trained ticket
        level_01/ticket/           mask + rewound weights, trained
        level_01/reinit/ ...       controls: same mask fresh init / random mask / one-shot mask / scratch / finetuned
        lmc/level_03_0it/copy_a/, copy_b/, result.json
        early_bird/<every>_w<window>_eps<eps>/search/   dense run stopped at Early-Bird detection (mask.pt)
        early_bird/<every>_w<window>_eps<eps>/ticket/   that ticket retrained

Each stage writes ``result.json`` last; re-running the same call skips finished stages and resumes a killed one
from its checkpoint, so the final numbers equal those of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Iterable

import torch

from netpress.data import DataHparams, DataSplits, iterations_per_epoch, load_data
from netpress.errors import ConfigError
from netpress.lottery.early_bird import EarlyBird
from netpress.lottery.hparams import BRANCH, LotteryHparams
from netpress.lottery.lmc import linear_interpolation
from netpress.lottery.pruning import dense_masks, level_masks, mask_sparsity, random_masks
from netpress.lottery.results import summarise
from netpress.lottery.stages import (StageJob, atomic_json, atomic_torch, done, load_stage, set_weights, stage_seconds,
                                     train_stage, train_stages_batched)
from netpress.models import ModelHparams, build_model
from netpress.prune import plain_state_dict
from netpress.runs import Store, recorded_threads, run_id, run_lock, runs_root, torch_threads, write_hparams
from netpress.train import TrainingHparams, lr_multiplier
from netpress.units import Steps

KIND = "lottery"
THREADS = "torch_threads"  # as in netpress.runs: hparams.json key, also in the summary


@dataclasses.dataclass
class LotteryResult:
    """A finished experiment.

    Attributes:
        id: ``lottery_<hash>``.
        path: its folder.
        rows: one dict per replicate, level and branch (sparsity, accuracies, early-stopping iteration, curve).
        summary: mean and spread over replicates per level and branch, the LMC analyses, the Early-Bird
            comparison (``early_bird``, when asked for) and ``torch_threads`` (the thread count it trained with; a
            resume reuses the recorded one).
        early_bird: one dict per replicate when ``hp.early_bird`` (detection, ticket accuracy, cost).
    """

    id: str
    path: Path
    rows: list[dict]
    summary: dict
    early_bird: list[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Ctx:
    folder: Path
    model_hp: ModelHparams
    train_hp: TrainingHparams
    hp: LotteryHparams
    data: DataSplits
    device: str
    progress: bool | None
    callbacks: tuple
    on_stage: Callable[[dict], None] | None
    store: Store
    rid: str

    @property
    def total(self) -> int:
        return Steps.parse(self.train_hp.steps).iterations(self.ipe)

    @property
    def ipe(self) -> int:
        return iterations_per_epoch(len(self.data.train), self.train_hp.batch_size)


def experiment_id(model_hp: ModelHparams, data_hp: DataHparams, train_hp: TrainingHparams, hp: LotteryHparams) -> str:
    """``lottery_<hash>`` of the settings that change numbers (levels, replicates, controls and LMC only add
    stages, so raising them later reuses the finished ones).

    Args:
        model_hp, data_hp, train_hp, hp: the experiment's settings.

    Returns:
        The experiment's folder name.

    Example:
        >>> experiment_id(ModelHparams(), DataHparams(), TrainingHparams(), LotteryHparams())
        'lottery_...'
    """
    return run_id(KIND, model_hp, data_hp, train_hp, hp.identity())


def run_lottery(model_hp: ModelHparams, data_hp: DataHparams, train_hp: TrainingHparams, hp: LotteryHparams, *,
                root: str | Path | None = None, data: DataSplits | None = None, data_dir: str | None = None,
                device: str = "auto", progress: bool | None = None, callbacks: Iterable = (),
                on_stage: Callable[[dict], None] | None = None, batch_replicates: bool = False) -> LotteryResult:
    """Run (or resume, or reuse) a lottery-ticket experiment.

    Args:
        model_hp, data_hp, train_hp: the network, data and how every level trains (the dense level trains
            ``train_hp.steps``; levels rewound to iteration k train the remaining ``steps - k``).
        hp: levels, pruning fractions, rewind point, controls, replicates, LMC.
        root: runs folder (default ``$NETPRESS_HOME`` or ``./netpress_runs``).
        data: already-loaded splits (else loaded from ``data_hp``).
        data_dir: where the data files are.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: progress bars (default: only on a terminal).
        callbacks: trainer callbacks run in every training (e.g. for tests).
        on_stage: called with each stage's row as it finishes (or is found finished).
        batch_replicates: train each level's stages of all replicates (tickets and controls) together with
            stacked parameters (:func:`netpress.train.batched.train_batched`); same stages and numbers up to
            float reassociation. Not with ``callbacks``.

    Returns:
        :class:`LotteryResult`.

    Raises:
        ConfigError: a rewind point at or past the end of training.

    Example:
        >>> res = run_lottery(ModelHparams("lenet300"), DataHparams("fashion-mnist"),
        ...                   lottery_training_defaults(), LotteryHparams(levels=3))
        >>> res.summary["levels"][-1]["ticket"]["test_accuracy"]["mean"]
    """
    root = runs_root(root)
    rid = experiment_id(model_hp, data_hp, train_hp, hp)
    folder = root / rid
    data = data or load_data(data_hp, data_dir)
    ctx = _Ctx(folder, model_hp, train_hp, hp, data, device, progress, tuple(callbacks), on_stage, Store(root), rid)
    _check_rewind(ctx)
    if batch_replicates and ctx.callbacks:
        raise ConfigError("batch_replicates does not run trainer callbacks; train replicates one by one")
    parts = {"model": model_hp, "data": data_hp, "training": train_hp, "lottery": hp}
    flat = {k: v.to_dict() for k, v in parts.items()}
    with run_lock(folder):
        threads = recorded_threads(folder)  # a resumed experiment trains with the count it started with
        write_hparams(folder, KIND, parts, extra={THREADS: threads})
        ctx.store.upsert_run(rid, KIND, folder, flat, "running")
        with torch_threads(threads):
            rows, lmc = _replicates_batched(ctx) if batch_replicates else ([], [])
            for rep in range(hp.replicates) if not batch_replicates else ():
                r_rows, r_lmc = _replicate(ctx, rep)
                rows, lmc = rows + r_rows, lmc + r_lmc
            eb = [_early_bird(ctx, rep) for rep in range(hp.replicates)] if hp.early_bird else []
        summary = {**summarise(rows, lmc, hp, eb), THREADS: threads}
        atomic_json({"rows": rows, "early_bird": eb, "summary": summary}, folder / "results.json")
        ctx.store.upsert_run(rid, KIND, folder, flat, "done", _short_summary(summary))
    return LotteryResult(rid, folder, rows, summary, eb)


def _check_rewind(ctx: _Ctx) -> None:
    points = [ctx.hp.rewind] if ctx.hp.rewind_iteration is not None else []
    for point in points + list(ctx.hp.lmc_rewind_list if ctx.hp.lmc_level_list else ()):
        if Steps.parse(point).iterations(ctx.ipe) >= ctx.total:
            raise ConfigError(f"rewind point {point} is not before the end of training ({ctx.train_hp.steps})")


def _short_summary(summary: dict) -> dict:
    last = summary["levels"][-1]
    ticket = last["branches"].get(BRANCH, {})
    return {"levels": len(summary["levels"]) - 1, "remaining": last["remaining"],
            "test_accuracy": ticket.get("test_accuracy", {}).get("mean"),
            "dense_test_accuracy": summary["levels"][0]["branches"][BRANCH]["test_accuracy"]["mean"]}


# ---------------------------------------------------------------- one replicate

def _replicate(ctx: _Ctx, rep: int) -> tuple[list[dict], list[dict]]:
    folder = ctx.folder / f"replicate_{rep}"
    train_hp = ctx.train_hp.replace(seed=ctx.train_hp.seed + rep)
    init = _init_state(ctx, folder, train_hp.seed)
    rows = [_dense_level(ctx, folder, rep, train_hp, init)]
    dense = load_stage(folder / "level_00" / BRANCH)
    lmc = _lmc_at(ctx, folder, rep, train_hp, 0, init, dense)
    parent = dense
    for level in range(1, ctx.hp.levels + 1):
        masks = _level_mask(ctx, folder / f"level_{level:02d}", parent, level)
        for branch in ctx.hp.level_branches(level):
            rows.append(_branch(ctx, folder, rep, train_hp, level, branch, masks, init, parent, dense))
        parent = load_stage(folder / f"level_{level:02d}" / BRANCH)
        lmc += _lmc_at(ctx, folder, rep, train_hp, level, init, dense)  # right after its level: results come in order
    return rows, lmc


def _lmc_at(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, level: int, init: dict, dense: dict) -> list:
    if level not in ctx.hp.lmc_level_list:
        return []
    return [_lmc(ctx, folder, rep, train_hp, level, point, init, dense) for point in ctx.hp.lmc_rewind_list]


def _fresh_model(ctx: _Ctx, seed: int):
    return build_model(ctx.model_hp, ctx.data.input_shape, ctx.data.num_classes, seed=seed)


def _init_state(ctx: _Ctx, folder: Path, seed: int) -> dict[str, torch.Tensor]:
    path = folder / "init.pt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_torch(plain_state_dict(_fresh_model(ctx, seed)), path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _dense_level(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, init: dict) -> dict:
    job = _dense_job(ctx, folder, rep, train_hp, init)
    result = train_stage(job.folder, job.model, ctx.data, job.hp, snapshot_at=_rewind_points(ctx),
                         desc=_desc(ctx, rep, 0, "dense"), device=ctx.device, progress=ctx.progress,
                         callbacks=ctx.callbacks, extra=job.extra)
    return _row(ctx, result)


def _dense_job(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, init: dict) -> StageJob:
    model = set_weights(_fresh_model(ctx, train_hp.seed), {}, init)
    return StageJob(folder / "level_00" / BRANCH, model, train_hp, _facts(dense_masks(model), level=0, branch=BRANCH, rep=rep))


def _rewind_points(ctx: _Ctx) -> list[str]:
    points = {ctx.hp.rewind} if ctx.hp.rewind_iteration is not None else set()
    return sorted(points | set(ctx.hp.lmc_rewind_list))


def _level_mask(ctx: _Ctx, folder: Path, parent: dict, level: int) -> dict[str, torch.Tensor]:
    path = folder / "mask.pt"
    if not path.exists():
        model = set_weights(_fresh_model(ctx, 0), parent["masks"], parent["state"])
        folder.mkdir(parents=True, exist_ok=True)
        atomic_torch(level_masks(model, ctx.hp, level), path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _branch(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, level: int, branch: str,
            masks: dict, init: dict, parent: dict, dense: dict) -> dict:
    job, start_it = _branch_job(ctx, folder, rep, train_hp, level, branch, masks, init, parent, dense)
    result = train_stage(job.folder, job.model, ctx.data, job.hp, start_iteration=start_it,
                         desc=_desc(ctx, rep, level, branch), device=ctx.device, progress=ctx.progress,
                         callbacks=ctx.callbacks, extra=job.extra)
    return _row(ctx, result)


def _branch_job(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, level: int, branch: str,
                masks: dict, init: dict, parent: dict, dense: dict) -> tuple[StageJob, int]:
    """The stage of one branch at one level: its starting network (mask + weights) and settings."""
    seed = derived_seed(train_hp.seed, level, branch)
    start = _start_state(ctx, init, parent, dense)
    if branch in ("reinit", "scratch"):
        start = plain_state_dict(_fresh_model(ctx, seed))
    elif branch == "finetuned":
        start = parent["state"]
    elif branch == "random-mask":
        masks = random_masks(masks, seed)
    elif branch == "oneshot":
        masks = level_masks(set_weights(_fresh_model(ctx, 0), {}, dense["state"]), ctx.hp, level)
    if branch in ("random-mask", "oneshot") and ctx.hp.rewind_iteration is None:
        start = dense["state"]  # lr/finetune: a new mask starts from the dense trained weights, not the parent's
    model = set_weights(_fresh_model(ctx, train_hp.seed), masks, start)
    hp, start_it = branch_hparams(ctx.hp, train_hp, ctx.ipe, branch)
    extra = {**_facts(masks, level, branch, rep), "branch_seed": seed}
    return StageJob(folder / f"level_{level:02d}" / branch, model, hp, extra), start_it


def _start_state(ctx: _Ctx, init: dict, parent: dict, dense: dict) -> dict[str, torch.Tensor]:
    """The weights survivors restart from: the init, the dense run at iteration k, or the parent's final weights."""
    point = ctx.hp.rewind_iteration
    if point is None:
        return parent["state"]
    return rewind_state(dense, init, point.iterations(ctx.ipe))


def rewind_state(dense: dict, init: dict, iteration: int) -> dict[str, torch.Tensor]:
    """The dense run's weights at ``iteration`` (0 = the saved init).

    Args:
        dense: the dense level's stage (:func:`load_stage`), whose ``snapshots`` hold the rewind points.
        init: the initial weights (plain names).
        iteration: the rewind iteration.

    Returns:
        Plain-named weights.

    Raises:
        ConfigError: when the dense level kept no snapshot there (the point was added after it finished).
    """
    if iteration == 0:
        return init
    snaps = dense["snapshots"]
    if iteration not in snaps:
        raise ConfigError(f"the dense level kept no weights at iteration {iteration} (kept: {sorted(snaps)}); "
                          f"this rewind point needs a new experiment")
    return snaps[iteration]


def retrain_hparams(hp: LotteryHparams, train_hp: TrainingHparams, ipe: int) -> tuple[TrainingHparams, int]:
    """How a pruned level trains: (training hparams, lr-schedule start iteration).

    Rewinding to iteration k trains the remaining ``T - k`` iterations with the schedule from k; ``lr`` replays
    the whole schedule; ``finetune`` trains ``T`` iterations at the schedule's final lr. (The trainer derives a
    cosine/linear schedule's length from ``steps``, so with those schedules late rewinding decays over ``T - k``;
    constant and step schedules, the paper's, replay exactly.)

    Args:
        hp: the lottery settings (rewind mode).
        train_hp: how the dense level trains.
        ipe: iterations per epoch.

    Returns:
        ``(training hparams, start_iteration)`` for :func:`netpress.train.train`.

    Example:
        >>> retrain_hparams(LotteryHparams(rewind="100it"), TrainingHparams(steps="1000it"), 50)[0].steps
        '900it'
    """
    point = hp.rewind_iteration
    total = Steps.parse(train_hp.steps).iterations(ipe)
    if hp.rewind == "finetune":
        final_lr = train_hp.lr * lr_multiplier(train_hp, ipe)(total - 1)
        return train_hp.replace(lr=max(final_lr, 1e-12), lr_schedule="constant", warmup="0it", milestones=""), 0
    if point is None or point.iterations(ipe) == 0:
        return train_hp, 0
    k = point.iterations(ipe)
    return train_hp.replace(steps=f"{total - k}it"), k


def branch_hparams(hp: LotteryHparams, train_hp: TrainingHparams, ipe: int, branch: str
                   ) -> tuple[TrainingHparams, int]:
    """How ``branch`` trains at a pruned level: the ticket and most controls as :func:`retrain_hparams`;
    ``scratch`` the dense schedule from iteration 0 (Scratch-E); ``finetuned`` as ``rewind='finetune'``.

    Example:
        >>> branch_hparams(LotteryHparams(rewind="100it"), TrainingHparams(steps="1000it"), 50, "scratch")[0].steps
        '1000it'
    """
    if branch == "scratch":
        return train_hp, 0
    if branch == "finetuned":
        return retrain_hparams(hp.replace(rewind="finetune"), train_hp, ipe)
    return retrain_hparams(hp, train_hp, ipe)


def derived_seed(seed: int, level: int, branch: str) -> int:
    """A seed for a control's fresh init or random mask, a pure function of (seed, level, branch).

    Args:
        seed: the replicate's training seed.
        level: the level.
        branch: the branch name.

    Returns:
        A non-negative 32-bit seed.

    Example:
        >>> derived_seed(0, 3, "reinit") == derived_seed(0, 3, "reinit") != derived_seed(0, 3, "random-mask")
        True
    """
    digest = hashlib.sha256(f"{seed}/{level}/{branch}".encode()).hexdigest()
    return int(digest[:8], 16)


def _facts(masks: dict, level: int, branch: str, rep: int) -> dict:
    s = mask_sparsity(masks)
    return {"level": level, "branch": branch, "replicate": rep, "sparsity": s["sparsity"],
            "remaining": s["remaining"], "layer_sparsity": s["layers"]}


def _desc(ctx: _Ctx, rep: int, level: int, branch: str) -> str:
    if rep < 0:
        return f"all reps level {level}/{ctx.hp.levels} {branch} ({ctx.train_hp.steps}, {ctx.ipe} it/ep)"
    return f"rep {rep} level {level}/{ctx.hp.levels} {branch} ({ctx.train_hp.steps}, {ctx.ipe} it/ep)"


def _row(ctx: _Ctx, result: dict) -> dict:
    row = dict(result)
    row["early_stop_epoch"] = row["early_stop_iteration"] / ctx.ipe
    name = f"{row['branch']}.r{row['replicate']}"
    ctx.store.log_metrics(ctx.rid, [{"iteration": row["level"], f"{name}.test_accuracy": row["test_accuracy"],
                                     f"{name}.early_stop_iteration": row["early_stop_iteration"],
                                     f"{name}.remaining": row["remaining"]}])
    if ctx.on_stage:
        ctx.on_stage(row)
    return row


# ---------------------------------------------------------------- all replicates together, level by level

def _replicates_batched(ctx: _Ctx) -> tuple[list[dict], list[dict]]:
    """Every replicate's stages of one level trained at once (:func:`train_stages_batched`): the dense nets,
    then per level the tickets and controls of all replicates (they share a shape); LMC copies one by one.
    Same stages, folders and numbers (up to float reassociation) as the replicate-by-replicate order."""
    reps = range(ctx.hp.replicates)
    folders = [ctx.folder / f"replicate_{r}" for r in reps]
    hps = [ctx.train_hp.replace(seed=ctx.train_hp.seed + r) for r in reps]
    inits = [_init_state(ctx, f, h.seed) for f, h in zip(folders, hps)]
    work = ctx.folder / "batched"
    dense_jobs = [_dense_job(ctx, f, r, h, i) for r, f, h, i in zip(reps, folders, hps, inits)]
    train_stages_batched(dense_jobs, ctx.data, work=work, snapshot_at=_rewind_points(ctx), device=ctx.device,
                         progress=ctx.progress, desc=_desc(ctx, -1, 0, "dense"))
    dense = [load_stage(f / "level_00" / BRANCH) for f in folders]
    for level in range(1, ctx.hp.levels + 1):
        groups: dict[tuple, list[StageJob]] = {}  # stages trained together share a schedule (scratch differs)
        for r in reps:
            parent = load_stage(folders[r] / f"level_{level - 1:02d}" / BRANCH)
            masks = _level_mask(ctx, folders[r] / f"level_{level:02d}", parent, level)
            for branch in ctx.hp.level_branches(level):
                job, start_it = _branch_job(ctx, folders[r], r, hps[r], level, branch, masks, inits[r], parent, dense[r])
                groups.setdefault((start_it, job.hp.steps, job.hp.lr, job.hp.lr_schedule), []).append(job)
        for (start_it, *_), jobs in groups.items():
            train_stages_batched(jobs, ctx.data, work=work, start_iteration=start_it, device=ctx.device,
                                 progress=ctx.progress, desc=_desc(ctx, -1, level, "all branches"))
    rows, lmc = [], []
    for r in reps:
        for level in range(ctx.hp.levels + 1):
            for branch in ctx.hp.level_branches(level) if level else (BRANCH,):
                rows.append(_row(ctx, done(folders[r] / f"level_{level:02d}" / branch)))
            lmc += _lmc_at(ctx, folders[r], r, hps[r], level, inits[r], dense[r])
    return rows, lmc


# ---------------------------------------------------------------- Early-Bird ticket

def _early_bird(ctx: _Ctx, rep: int) -> dict:
    """Search (dense from the replicate's init, stopped at detection) and retrain the Early-Bird ticket of the
    final level's sparsity; compared with the IMP ticket line of the same replicate."""
    hp, folder = ctx.hp, ctx.folder / f"replicate_{rep}"
    train_hp = ctx.train_hp.replace(seed=ctx.train_hp.seed + rep)
    out = folder / "early_bird" / f"{hp.early_bird_every}_w{hp.early_bird_window}_eps{hp.early_bird_eps:g}"
    search = _early_bird_search(ctx, out / "search", rep, train_hp, _init_state(ctx, folder, train_hp.seed))
    masks = torch.load(out / "search" / "mask.pt", map_location="cpu", weights_only=True)
    model = set_weights(_fresh_model(ctx, train_hp.seed), masks, load_stage(out / "search")["state"])
    ticket = train_stage(out / "ticket", model, ctx.data, train_hp, desc=_desc(ctx, rep, hp.levels, "early-bird"),
                         device=ctx.device, progress=ctx.progress, callbacks=ctx.callbacks,
                         extra=_facts(masks, hp.levels, "early-bird", rep))
    imp = [done(folder / f"level_{lv:02d}" / BRANCH) for lv in range(hp.levels + 1)]
    imp_seconds = [stage_seconds(folder / f"level_{lv:02d}" / BRANCH) for lv in range(hp.levels + 1)]
    eb_its, imp_its = search["iterations"] + ticket["iterations"], sum(r["iterations"] for r in imp)
    return {"replicate": rep, "level": hp.levels, "remaining": ticket["remaining"],
            "detected": search["early_bird_detected"], "detected_iteration": search["early_bird_iteration"],
            "detected_epoch": None if search["early_bird_iteration"] is None else search["early_bird_iteration"] / ctx.ipe,
            "distances": search["early_bird_distances"],
            "observe_every_iterations": search["early_bird_every"],
            "test_accuracy": ticket["test_accuracy"], "early_stop_test_accuracy": ticket["early_stop_test_accuracy"],
            "imp_test_accuracy": imp[-1]["test_accuracy"], "imp_remaining": imp[-1]["remaining"],
            "imp_early_stop_test_accuracy": imp[-1]["early_stop_test_accuracy"],
            "search_iterations": search["iterations"], "retrain_iterations": ticket["iterations"],
            "iterations": eb_its, "imp_iterations": imp_its, "iteration_ratio": imp_its / max(1, eb_its),
            "seconds": _sum_or_none([stage_seconds(out / "search"), stage_seconds(out / "ticket")]),
            "imp_seconds": _sum_or_none(imp_seconds)}


def _sum_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values)


def _early_bird_search(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, init: dict) -> dict:
    """The dense run with an :class:`EarlyBird` callback (final level's masks, stop at detection); its ticket
    mask goes to ``mask.pt`` (the weights at the end, i.e. at detection, to ``final.pt``). Without a detection
    the whole run is trained and the mask is drawn from its end."""
    hp = ctx.hp
    every = Steps.parse(hp.early_bird_every).iterations(ctx.ipe)
    eb = EarlyBird(1 - hp.density(hp.levels), window=hp.early_bird_window, eps=hp.early_bird_eps, every=every,
                   masker=lambda m: level_masks(m, hp, hp.levels), stop=True)
    model = set_weights(_fresh_model(ctx, train_hp.seed), {}, init)

    def record() -> dict:
        mask = eb.ticket if eb.ticket is not None else level_masks(model, hp, hp.levels)
        atomic_torch({n: m.cpu() for n, m in mask.items()}, folder / "mask.pt")
        return {"early_bird_detected": eb.ticket is not None, "early_bird_iteration": eb.detected_iteration,
                "early_bird_distances": eb.distances, "early_bird_every": every, "level": hp.levels,
                "branch": "early-bird-search", "replicate": rep}

    return train_stage(folder, model, ctx.data, train_hp, desc=_desc(ctx, rep, 0, "early-bird search"),
                       device=ctx.device, progress=ctx.progress, callbacks=[eb, *ctx.callbacks], resumable=False,
                       after=record)


# ---------------------------------------------------------------- linear mode connectivity

def _lmc(ctx: _Ctx, folder: Path, rep: int, train_hp: TrainingHparams, level: int, point: str,
         init: dict, dense: dict) -> dict:
    out = folder / "lmc" / f"level_{level:02d}_{point}"
    found = done(out)
    if found is not None:
        return found
    k = Steps.parse(point).iterations(ctx.ipe)
    masks = load_stage(folder / f"level_{level:02d}" / BRANCH)["masks"] if level else {}
    start = rewind_state(dense, init, k)
    hp = train_hp.replace(steps=f"{ctx.total - k}it") if k else train_hp
    copies = []
    for name, order_seed in zip(("copy_a", "copy_b"), ctx.hp.lmc_seed_pair):
        model = set_weights(_fresh_model(ctx, train_hp.seed), masks, start)
        train_stage(out / name, model, ctx.data, hp.replace(data_order_seed=order_seed), start_iteration=k,
                    desc=_desc(ctx, rep, level, f"lmc {name} from {point}"), device=ctx.device,
                    progress=ctx.progress, callbacks=ctx.callbacks)
        copies.append(set_weights(model.cpu(), {}, load_stage(out / name)["state"]))  # also when found done
    curve = linear_interpolation(copies[0], copies[1], ctx.data.test, points=ctx.hp.lmc_points)
    result = {"replicate": rep, "level": level, "rewind": point, **_facts(masks or dense_masks(copies[0]), level,
              "lmc", rep), **curve.to_dict()}
    atomic_json(result, out / "result.json")
    return result
