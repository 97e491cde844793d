"""Singular-value spectra of factorized layers (PNG)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from netpress.report.plots import new_figure, save_figure


def plot_spectra(reports: Sequence, path: str | Path) -> Path:
    """Plot each layer's normalised singular values (log scale), marking the chosen rank.

    Args:
        reports: :class:`netpress.lowrank.LayerReport` objects (``name``, ``rank``, ``singular_values``).
        path: the PNG to write.

    Returns:
        The written path.

    Example:
        >>> plot_spectra(result.layers, "spectrum.png")
    """
    fig, (ax_s, ax_e) = _two_axes()
    for r in reports:
        s = [v for v in r.singular_values]
        top = s[0] if s and s[0] > 0 else 1.0
        xs = range(1, len(s) + 1)
        line, = ax_s.semilogy(xs, [max(v / top, 1e-12) for v in s], label=_label(r))
        sq = [v * v for v in s]
        total = sum(sq) or 1.0
        cum, acc = [], 0.0
        for v in sq:
            acc += v
            cum.append(acc / total)
        ax_e.plot(xs, cum, color=line.get_color())
        if r.rank is not None:
            ax_s.axvline(r.rank, color=line.get_color(), linestyle=":", linewidth=1)
            ax_e.axvline(r.rank, color=line.get_color(), linestyle=":", linewidth=1)
    ax_s.set(xlabel="index", ylabel="s_i / s_1", title="singular values")
    ax_e.set(xlabel="rank k", ylabel="energy kept", title="cumulative energy", ylim=(0, 1.01))
    ax_s.legend(fontsize=7)
    return save_figure(fig, path)


def _two_axes():
    fig, ax = new_figure(10.0, 4.0)
    fig.delaxes(ax)
    return fig, fig.subplots(1, 2)


def _label(r) -> str:
    rank = "dense" if r.rank is None else f"k={r.rank}"
    return f"{r.name} {r.shape[0]}x{r.shape[1]} ({rank})"
