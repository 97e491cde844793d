"""Lottery-ticket report: PNG plots and a Markdown table from :func:`netpress.lottery.summarise` output.

Figures: test accuracy vs percent of weights remaining (log axis) per branch with replicate bands; early-stopping
iteration vs weights remaining; test error along the linear interpolation between two trained copies.
"""
from __future__ import annotations

from pathlib import Path

from netpress.report.plots import new_figure, save_figure

TICKET = "ticket"


def _series(summary: dict, branch: str, metric: str) -> tuple[list[float], list[dict]]:
    """(% remaining, stats) per level for ``branch``; level 0 (the dense net) starts every branch."""
    xs, ys = [], []
    for lv in summary["levels"]:
        b = lv["branches"].get(branch) or (lv["branches"][TICKET] if lv["level"] == 0 else None)
        if b is not None:
            xs.append(100 * b["remaining"]["mean"])
            ys.append(b[metric])
    return xs, ys


def plot_metric(summary: dict, metric: str, ylabel: str, path: Path, scale: float = 1.0) -> Path:
    """One line per branch (mean over replicates) with a min-max band, against % weights remaining (log x).

    Args:
        summary: the experiment summary.
        metric: a per-branch metric (``early_stop_test_accuracy``, ``test_accuracy``, ``early_stop_iteration``).
        ylabel: axis label.
        path: PNG to write.
        scale: factor applied to the values (100 for percent).

    Returns:
        ``path``.

    Example:
        >>> plot_metric(summary, "early_stop_iteration", "early-stopping iteration", Path("es.png"))
    """
    fig, ax = new_figure(7, 4.5)
    for branch in summary["branches"]:
        xs, ys = _series(summary, branch, metric)
        mean = [scale * s["mean"] for s in ys]
        line, = ax.plot(xs, mean, marker="o", ms=3, label=branch)
        ax.fill_between(xs, [scale * s["min"] for s in ys], [scale * s["max"] for s in ys],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("% of weights remaining (log)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_interpolation(summary: dict, path: Path) -> Path:
    """Test error (%) along the line between two copies, one curve per (level, rewind, replicate).

    Args:
        summary: the experiment summary (its ``lmc`` entries).
        path: PNG to write.

    Returns:
        ``path``.

    Example:
        >>> plot_interpolation(summary, Path("lmc.png"))
    """
    fig, ax = new_figure(7, 4.5)
    for entry in summary["lmc"]:
        for curve in entry["curves"]:
            label = f"{100 * entry['remaining']:.1f}% weights, from {entry['rewind']} (rep {curve['replicate']})"
            ax.plot(curve["alphas"], [100 * e for e in curve["errors"]], marker=".", label=label)
    ax.set_xlabel("interpolation alpha (0 = copy a, 1 = copy b)")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    if summary["lmc"]:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _fmt(s: dict | None, scale: float = 100.0, digits: int = 2) -> str:
    if s is None:
        return ""
    text = f"{scale * s['mean']:.{digits}f}"
    return text + (f" ± {scale * s['std']:.{digits}f}" if s["n"] > 1 else "")


def level_table(summary: dict) -> str:
    """Markdown table: per level, % remaining, each branch's early-stop / final test accuracy and early-stop
    iteration (mean ± std over replicates).

    Args:
        summary: the experiment summary.

    Returns:
        The table as Markdown text.

    Example:
        >>> print(level_table(summary))
    """
    branches = summary["branches"]
    head = ["level", "% remaining"] + [f"{b} acc@es / final (%)" for b in branches] + [f"{b} es it" for b in branches]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lv in summary["levels"]:
        bs = lv["branches"]
        accs = [f"{_fmt(bs[b]['early_stop_test_accuracy'])} / {_fmt(bs[b]['test_accuracy'])}" if b in bs else ""
                for b in branches]
        its = [_fmt(bs[b]["early_stop_iteration"], 1, 0) if b in bs else "" for b in branches]
        lines.append("| " + " | ".join([str(lv["level"]), f"{100 * lv['remaining']:.2f}", *accs, *its]) + " |")
    return "\n".join(lines)


def lmc_table(summary: dict) -> str:
    """Markdown table of the linear-mode-connectivity barriers.

    Args:
        summary: the experiment summary.

    Returns:
        The table as Markdown text (or a note when there is no LMC analysis).

    Example:
        >>> print(lmc_table(summary))
    """
    if not summary["lmc"]:
        return "(no linear mode connectivity analysis)"
    lines = ["| level | % remaining | start | endpoint test error (%) | barrier (pt) |", "|---|---|---|---|---|"]
    for e in summary["lmc"]:
        lines.append(f"| {e['level']} | {100 * e['remaining']:.2f} | {e['rewind']} | {_fmt(e['endpoint_error'])} | "
                     f"{_fmt(e['barrier'])} |")
    return "\n".join(lines)


def write_report(summary: dict, out_dir: str | Path, stem: str = "lottery", title: str = "Lottery tickets") -> dict:
    """Write the PNGs (``<stem>_accuracy.png``, ``<stem>_final_accuracy.png``, ``<stem>_early_stop.png``,
    ``<stem>_lmc.png``) into ``out_dir`` and return them with the Markdown text that embeds them.

    Args:
        summary: :func:`netpress.lottery.summarise` output (also ``results.json["summary"]``).
        out_dir: folder for the figures.
        stem: file-name prefix.
        title: Markdown title.

    Returns:
        ``{"markdown": str, "figures": [Path, ...]}``.

    Example:
        >>> write_report(json.load(open("netpress_runs/lottery_x/results.json"))["summary"], "out")["figures"]
    """
    out = Path(out_dir)
    figs = [
        plot_metric(summary, "early_stop_test_accuracy", "test accuracy at early stop (%)", out / f"{stem}_accuracy.png", 100),
        plot_metric(summary, "test_accuracy", "final test accuracy (%)", out / f"{stem}_final_accuracy.png", 100),
        plot_metric(summary, "early_stop_iteration", "early-stopping iteration", out / f"{stem}_early_stop.png"),
        plot_interpolation(summary, out / f"{stem}_lmc.png"),
    ]
    md = [f"# {title}", "", "## Levels (mean ± std over replicates; es = early stop at minimum validation loss)", "",
          level_table(summary), "", "## Linear mode connectivity", "", lmc_table(summary), ""]
    if summary.get("early_bird"):
        md += ["## Early-Bird ticket vs the last IMP level (mean over replicates that detected one)", "",
               early_bird_table(summary["early_bird"]), ""]
    md += ["## Figures", ""]
    md += [f"![{p.stem}]({p.name})" for p in figs]
    return {"markdown": "\n".join(md) + "\n", "figures": figs}


def early_bird_table(eb: dict) -> str:
    """Markdown table of the Early-Bird summary: detection, both tickets' accuracy, iterations and seconds.

    Args:
        eb: ``summary["early_bird"]`` (:func:`netpress.lottery.summarise`).

    Returns:
        The table (one row), or a line saying no replicate detected a ticket.

    Example:
        >>> early_bird_table(summary["early_bird"]).splitlines()[0]
        '| detected | at iteration | ...'
    """
    if not eb.get("detected"):
        return f"No replicate detected an Early-Bird ticket ({eb['replicates']} searched)."
    mean = lambda k, scale=1.0, d=1: f"{scale * eb[k]['mean']:.{d}f}" if k in eb else "n/a"
    head = ["detected", "at iteration", "% remaining", "EB acc (%)", "IMP acc (%)", "EB its", "IMP its", "its ratio",
            "EB s", "IMP s"]
    row = [f"{eb['detected']}/{eb['replicates']}", mean("detected_iteration", d=0), mean("remaining", 100, 2),
           mean("test_accuracy", 100, 2), mean("imp_test_accuracy", 100, 2), mean("iterations", d=0),
           mean("imp_iterations", d=0), mean("iteration_ratio", d=2), mean("seconds"), mean("imp_seconds")]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(row) + " |"])


def checks(summary: dict) -> list[dict]:
    """The paper's qualitative claims checked on a summary (LeNet-300-100 targets of Frankle & Carbin).

    Args:
        summary: the experiment summary; claims whose branches or levels are absent are skipped.

    Returns:
        One dict per claim: ``check``, ``target``, ``measured`` (text) and ``met`` (bool).

    Example:
        >>> [c["met"] for c in checks(summary)]
    """
    return [c for c in (_check_matches_dense(summary), _check_vs_reinit(summary), _check_early_stop(summary),
                        _check_stability(summary)) if c is not None]


def _ticket(lv: dict, metric: str) -> float:
    return lv["branches"][TICKET][metric]["mean"]


def _check_matches_dense(summary: dict) -> dict:
    levels = summary["levels"]
    dense = _ticket(levels[0], "early_stop_test_accuracy")
    lowest = 1.0
    for lv in levels[1:]:
        if _ticket(lv, "early_stop_test_accuracy") < dense - 0.003:
            break
        lowest = lv["remaining"]
    return {"check": "tickets within 0.3 pt of dense (acc at early stop), all levels down to", "target": "<= 3.6% weights",
            "measured": f"{100 * lowest:.1f}% (dense {100 * dense:.2f}%)", "met": lowest <= 0.036}


def _check_vs_reinit(summary: dict) -> dict | None:
    cands = [lv for lv in summary["levels"][1:] if "reinit" in lv["branches"]]
    if not cands:
        return None
    lv = min(cands, key=lambda v: abs(v["remaining"] - 0.03))
    gap = _ticket(lv, "early_stop_test_accuracy") - lv["branches"]["reinit"]["early_stop_test_accuracy"]["mean"]
    return {"check": f"ticket minus random re-init at {100 * lv['remaining']:.1f}% weights", "target": ">= 2 pt",
            "measured": f"{100 * gap:+.2f} pt", "met": gap >= 0.02}


def _check_early_stop(summary: dict) -> dict | None:
    dense = _ticket(summary["levels"][0], "early_stop_iteration")
    band = [lv for lv in summary["levels"][1:] if 0.2 <= lv["remaining"] <= 0.5]
    if not band:
        return None
    its = [_ticket(lv, "early_stop_iteration") for lv in band]
    return {"check": "ticket early-stop iteration at 20-50% weights vs dense", "target": f"< dense ({dense:.0f})",
            "measured": ", ".join(f"{100 * lv['remaining']:.0f}%: {it:.0f}" for lv, it in zip(band, its)),
            "met": all(it < dense for it in its)}


def _check_stability(summary: dict) -> dict | None:
    at_init = [e for e in summary["lmc"] if e["rewind"] == "0it"]
    if not at_init:
        return None
    worst = max(e["barrier"]["max"] for e in at_init)
    return {"check": "LMC error barrier from init (dense and tickets)", "target": "< 2 pt",
            "measured": ", ".join(f"{100 * e['remaining']:.1f}%: {100 * e['barrier']['mean']:.2f}" for e in at_init),
            "met": worst < 0.02}
