"""Pruning plots: the Han-style sensitivity plot."""
from __future__ import annotations

from pathlib import Path

from netpress.report.plots import finish_axes, new_figure


def plot_sensitivity(rows: list[dict], path: str | Path, title: str = "Pruning sensitivity") -> Path:
    """One line per layer: accuracy vs the layer's sparsity (rows from ``netpress.prune.sensitivity``).

    Returns:
        The PNG path.
    """
    fig, ax = new_figure()
    for layer in dict.fromkeys(r["layer"] for r in rows):
        pts = sorted((r["sparsity"], r["accuracy"]) for r in rows if r["layer"] == layer)
        ax.plot([100 * s for s, _ in pts], [100 * a for _, a in pts], marker="o", label=layer)
    return finish_axes(fig, ax, path, xlabel="parameters pruned away (%)", ylabel="accuracy (%)", title=title)
