"""Plots of quantization results (accuracy vs bits, as Deep Compression Fig. 8)."""
from __future__ import annotations

from pathlib import Path

from netpress.report.plots import finish_axes, new_figure


def plot_accuracy_vs_bits(curves: dict[str, dict[int, float]], path: str | Path, title: str = "",
                          float_accuracy: float | None = None) -> Path:
    """One line per method: test accuracy against bits per weight.

    Args:
        curves: ``{method label: {bits: accuracy}}`` (accuracy as a fraction).
        path: PNG destination.
        title: figure title.
        float_accuracy: draws a dashed reference line when given.

    Returns:
        The written path.

    Example:
        >>> plot_accuracy_vs_bits({"k-means linear": {2: 0.8, 4: 0.89}}, "acc.png", float_accuracy=0.895)
    """
    fig, ax = new_figure()
    for label, points in curves.items():
        bits = sorted(points)
        ax.plot(bits, [100 * points[b] for b in bits], marker="o", label=label)
    if float_accuracy is not None:
        ax.axhline(100 * float_accuracy, color="gray", linestyle="--", label="float")
    return finish_axes(fig, ax, path, xlabel="bits per weight", ylabel="test accuracy (%)", title=title)
