"""The compression report: Markdown with the stage table (Deep Compression Table 1), the per-layer table
(Tables 2-3) and PNG plots (weight distributions as in Fig. 3/5, per-layer sparsity and bits, accuracy and size
per stage, and a budget schedule's pruning path)."""
from __future__ import annotations

from pathlib import Path

import torch

from netpress.fileio import atomic_write_text
from netpress.report.plots import new_figure, save_figure


def stage_table(rows: list[dict]) -> str:
    lines = ["| stage | test accuracy | bytes | ratio vs fp32 | sparsity | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['test_accuracy']:.4f} | {r['bytes']:,} | {r['ratio']:.1f}x | "
                     f"{r['sparsity']:.3f} | {r.get('seconds', 0)} |")
    return "\n".join(lines)


LAYER_COLUMNS = ["name", "weights", "kept", "bits", "weight_bits_fixed", "weight_bits_coded", "index_bits",
                 "codebook_bytes", "total_bytes", "ratio"]


def layer_table(layers: list[dict]) -> str:
    if not layers:
        return "(no encoded file)"
    cols = [c for c in LAYER_COLUMNS if c in layers[0]] or list(layers[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for layer in layers:
        lines.append("| " + " | ".join(_cell(layer.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def plot_weight_distributions(snapshots: dict[str, torch.Tensor], layer: str, path: Path) -> Path:
    """Histograms of one layer's weights at each stage (zeros of pruned weights left out after pruning)."""
    fig, axes = new_figure(4.0 * len(snapshots), 3.2)
    fig.clf()
    for i, (stage, w) in enumerate(snapshots.items()):
        ax = fig.add_subplot(1, len(snapshots), i + 1)
        values = w.flatten()
        if stage != "dense":
            values = values[values != 0]
        distinct = torch.unique(values)
        if len(distinct) <= 256 and stage != "dense":
            counts = torch.stack([(values == v).sum() for v in distinct])
            ax.vlines(distinct.numpy(), 0, counts.numpy(), linewidth=1.2)
            ax.set_title(f"{stage}: {len(distinct)} shared values")
        else:
            ax.hist(values.numpy(), bins=120)
            ax.set_title(f"{stage}: {values.numel():,} weights")
        ax.set_xlabel(f"value of {layer}")
    return save_figure(fig, path)


def plot_layers(sparsity: dict[str, float], bits: dict[str, int], path: Path) -> Path:
    """Per-layer fraction of weights kept and bits per weight."""
    fig, ax = new_figure(6.5, 3.5)
    names = list(sparsity)
    kept = [1 - sparsity[n] for n in names]
    ax.bar(range(len(names)), kept, color="tab:blue")
    ax.set_ylabel("fraction of weights kept", color="tab:blue")
    ax.set_xticks(range(len(names)), [n.replace(".weight", "") for n in names], rotation=20)
    if bits:
        ax2 = ax.twinx()
        values = [bits.get(n, 32) for n in names]
        ax2.plot(range(len(names)), values, "o-", color="tab:red")
        ax2.set_ylim(0, max(values) + 1)
        ax2.set_ylabel("bits per weight", color="tab:red")
    ax.set_title("per-layer pruning and quantization")
    return save_figure(fig, path)


def plot_stages(rows: list[dict], path: Path) -> Path:
    """Accuracy and bytes after each stage."""
    fig, ax = new_figure(6.0, 3.5)
    x = range(len(rows))
    ax.plot(x, [r["test_accuracy"] for r in rows], "o-", color="tab:green")
    ax.set_ylabel("test accuracy", color="tab:green")
    ax.set_xticks(list(x), [r["stage"] for r in rows])
    ax2 = ax.twinx()
    ax2.bar(x, [r["bytes"] / 1024 for r in rows], alpha=0.3, color="tab:gray")
    ax2.set_yscale("log")
    ax2.set_ylabel("KiB (log)")
    ax.set_title("accuracy and size per stage")
    return save_figure(fig, path)


def budget_table(rounds: list[dict]) -> str:
    """The budget schedule's pruning path: each round's measured and smoothed validation drop, and the kept one."""
    lines = ["| round | sparsity | validation drop (pt) | smoothed (pt) | kept |", "|---|---|---|---|---|"]
    for i, r in enumerate(rounds, start=1):
        lines.append(f"| {i} | {r['sparsity']:.4f} | {100 * r['drop']:.2f} +- {100 * r['se']:.2f} | "
                     f"{100 * r['fitted_drop']:.2f} +- {100 * r['pooled_se']:.2f} | {'kept' if r['chosen'] else ''} |")
    return "\n".join(lines)


def _reference_line(control: dict | None) -> list[str]:
    """What the budget drops are measured from, when the stage trained a control."""
    if not control:
        return []
    which = "the control (the input model retrained like one round, nothing pruned)" \
        if control["reference"] == "control" else "the input model (the control was not more accurate)"
    return [f"Drops measured from {which}: validation accuracy {control['input_val_accuracy']:.4f} input model, "
            f"{control['control_val_accuracy']:.4f} control.", ""]


def plot_budget_path(rounds: list[dict], path: Path) -> Path:
    """Validation drop along the pruning path: measurements with one standard error, the monotone fit with its
    pooled standard error, the budget, and the kept round."""
    import numpy as np

    fig, ax = new_figure(6.5, 3.8)
    x = np.array([-np.log10(1 - r["sparsity"]) for r in rounds])  # density on a log scale: 0.1 -> 1, 0.01 -> 2
    drop = np.array([100 * r["drop"] for r in rounds])
    fit = np.array([100 * r["fitted_drop"] for r in rounds])
    pooled = np.array([100 * r["pooled_se"] for r in rounds])
    ax.errorbar(x, drop, yerr=[100 * r["se"] for r in rounds], fmt="o", color="tab:gray", capsize=3,
                label="measured +- 1 s.e.")
    ax.plot(x, fit, "-", color="tab:blue", label="monotone fit")
    ax.fill_between(x, fit - pooled, fit + pooled, color="tab:blue", alpha=0.15)
    ax.axhline(100 * rounds[0]["budget"], color="tab:red", linestyle="--", label="budget")
    kept = [i for i, r in enumerate(rounds) if r["chosen"]]
    if kept:
        ax.plot(x[kept], fit[kept], "*", markersize=14, color="tab:green", label="kept")
    ticks = [r["sparsity"] for r in rounds]
    ax.set_xticks(x, [f"{s:.1%}" for s in ticks], rotation=45, fontsize=7)
    ax.set_xlabel("sparsity")
    ax.set_ylabel("validation accuracy drop (pt)")
    ax.set_title("budget schedule: pruning path")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_report(result, folder: Path, title: str, snapshots: dict[str, torch.Tensor], layer: str) -> Path:
    """Write ``report.md`` and its PNGs into ``folder``; returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_weight_distributions(snapshots, layer, folder / "weights.png")
    sparsity = {n: float((w == 0).float().mean()) for n, w in result.final_weights.items()}
    plot_layers(sparsity, result.notes.get("bits", {}), folder / "layers.png")
    plot_stages(result.rows, folder / "stages.png")
    md = [f"# {title}", "", "## Stages (Deep Compression Table 1 style)", "", stage_table(result.rows), "",
          "![accuracy and size per stage](stages.png)", "",
          "## Layers of the encoded file (Tables 2-3 style)", "", layer_table(result.layers), "",
          "![per-layer sparsity and bits](layers.png)", "",
          f"## Weight distribution of `{layer}` (Fig. 3 / Fig. 5 style)", "", "![weights](weights.png)", ""]
    rounds = result.notes.get("budget_rounds") or []
    if rounds and "fitted_drop" in rounds[0]:
        plot_budget_path(rounds, folder / "budget.png")
        md += ["## Budget schedule: the pruning path", "", *_reference_line(result.notes.get("budget_control")),
               budget_table(rounds), "", "![validation drop along the pruning path](budget.png)", ""]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(md))
    return path
