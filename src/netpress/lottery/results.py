"""Aggregation of a lottery experiment's rows: mean and spread over replicates per level and branch."""
from __future__ import annotations

import statistics
from collections import defaultdict

from netpress.lottery.hparams import BRANCH, LotteryHparams

METRICS = ("test_accuracy", "early_stop_test_accuracy", "early_stop_iteration", "remaining")


def stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and count.

    Args:
        values: one value per replicate (at least one).

    Returns:
        ``{"mean", "std", "min", "max", "n"}``.

    Example:
        >>> stats([1.0, 3.0])["mean"]
        2.0
    """
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


EARLY_BIRD = ("detected_iteration", "detected_epoch", "test_accuracy", "imp_test_accuracy", "remaining",
              "search_iterations", "iterations", "imp_iterations", "iteration_ratio", "seconds", "imp_seconds")


def summarise(rows: list[dict], lmc: list[dict], hp: LotteryHparams, early_bird: list[dict] = ()) -> dict:
    """Per level and branch statistics over replicates, and per (level, rewind) LMC barriers.

    Args:
        rows: one dict per replicate/level/branch (keys ``level``, ``branch`` and :data:`METRICS`).
        lmc: one dict per replicate/level/rewind LMC analysis (``barrier``, ``errors``, ``alphas``).
        hp: the experiment's settings.
        early_bird: one dict per replicate of the Early-Bird search (:data:`EARLY_BIRD` keys, ``detected``).

    Returns:
        ``{"levels": [{"level", "remaining", "branches": {branch: {metric: stats}}}], "lmc": [...],
        "early_bird": {metric: stats, "detected": count} or None}`` (statistics over replicates that detected
        a ticket; ``None`` values, e.g. a missing timing, are left out).

    Example:
        >>> summarise(rows, [], LotteryHparams())["levels"][0]["branches"]["ticket"]["test_accuracy"]["mean"]
    """
    grouped = defaultdict(lambda: defaultdict(list))
    for r in rows:
        grouped[r["level"]][r["branch"]].append(r)
    levels = []
    for level in sorted(grouped):
        branches = {b: {m: stats([r[m] for r in rs]) for m in METRICS} for b, rs in grouped[level].items()}
        levels.append({"level": level, "remaining": branches[BRANCH]["remaining"]["mean"], "branches": branches})
    return {"levels": levels, "lmc": _summarise_lmc(lmc), "branches": list(hp.branches),
            "prune_fraction": hp.prune_fraction, "rewind": hp.rewind, "early_bird": _summarise_early_bird(early_bird)}


def _summarise_early_bird(runs: list[dict]) -> dict | None:
    if not runs:
        return None
    out: dict = {"replicates": len(runs), "detected": sum(bool(r["detected"]) for r in runs)}
    for m in EARLY_BIRD:
        values = [r[m] for r in runs if r.get(m) is not None]
        if values:
            out[m] = stats(values)
    return out


def _summarise_lmc(lmc: list[dict]) -> list[dict]:
    grouped = defaultdict(list)
    for r in lmc:
        grouped[(r["level"], r["rewind"])].append(r)
    out = []
    for (level, rewind), rs in sorted(grouped.items()):
        out.append({"level": level, "rewind": rewind, "remaining": rs[0]["remaining"],
                    "barrier": stats([r["barrier"] for r in rs]),
                    "endpoint_error": stats([(r["errors"][0] + r["errors"][-1]) / 2 for r in rs]),
                    "curves": [{"replicate": r["replicate"], "alphas": r["alphas"], "errors": r["errors"]} for r in rs]})
    return out
