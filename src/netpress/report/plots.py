"""Matplotlib helpers (headless Agg backend; figures saved atomically as PNG)."""
from __future__ import annotations

from pathlib import Path

from netpress.fileio import atomic_write


def new_figure(width: float = 6.0, height: float = 4.0):
    """A (figure, axes) pair on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return fig, ax


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG at ``path`` (crash-safe: a unique temp file, then a rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def finish_axes(fig, ax, path: str | Path, *, xlabel: str, ylabel: str, title: str, legend: bool = True) -> Path:
    """Label, title, grid and (optionally) legend an axes, then save the figure as PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)
    return save_figure(fig, path)
