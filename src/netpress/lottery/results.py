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


def summarise(rows: list[dict], lmc: list[dict], hp: LotteryHparams) -> dict:
    """Per level and branch statistics over replicates, and per (level, rewind) LMC barriers.

    Args:
        rows: one dict per replicate/level/branch (keys ``level``, ``branch`` and :data:`METRICS`).
        lmc: one dict per replicate/level/rewind LMC analysis (``barrier``, ``errors``, ``alphas``).
        hp: the experiment's settings.

    Returns:
        ``{"levels": [{"level", "remaining", "branches": {branch: {metric: stats}}}], "lmc": [...]}``.

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
            "prune_fraction": hp.prune_fraction, "rewind": hp.rewind}


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
