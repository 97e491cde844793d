"""The sweep report: a table of trials, a size-vs-accuracy Pareto plot, one plot per swept parameter, and the
best configuration per size budget, as Markdown and HTML.
"""
from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path

from netpress.fileio import atomic_write_text
from netpress.report.plots import finish_axes, new_figure

SIZE_LABEL = {"train": "size (bytes, fp32)", "compress": "file size (bytes)", "lottery": "weights remaining (fraction)"}


def sweep_points(trials: list[dict]) -> list[dict]:
    """One row per (trial, point): the swept values, size and test accuracy (lottery trials: one per level).

    Args:
        trials: the store's trial rows (:meth:`Store.trials`).

    Returns:
        Rows ``{trial, run_id, params..., size, test_accuracy[, level]}`` of the finished trials.

    Example:
        >>> sweep_points(store.trials("sweep_ab12"))[0]["test_accuracy"]
    """
    rows = []
    for t in trials:
        result = t.get("result") or {}
        for p in result.get("points") or []:
            rows.append({"trial": t["trial"], "run_id": t["run_id"], **t["params"], **p})
    return rows


def pareto_front(rows: list[dict]) -> list[dict]:
    """The points no other point beats on both size (smaller) and accuracy (higher), by increasing size.

    Args:
        rows: dicts with ``size`` and ``test_accuracy``.

    Returns:
        The front; entry i is the best configuration for any budget in ``[size_i, size_{i+1})``.

    Example:
        >>> [r["size"] for r in pareto_front([{"size": 1, "test_accuracy": .9}, {"size": 2, "test_accuracy": .8}])]
        [1]
    """
    front, best = [], float("-inf")
    for r in sorted(rows, key=lambda r: (r["size"], -r["test_accuracy"])):
        if r["test_accuracy"] > best:
            front.append(r)
            best = r["test_accuracy"]
    return front


def write_sweep_report(sweep_id: str, spec, trials: list[dict], out: str | Path) -> dict:
    """Write ``report.md``, ``report.html`` and PNG plots of a sweep into ``out``.

    Args:
        sweep_id: the sweep's id.
        spec: its :class:`SweepSpec`.
        trials: the store's trial rows.
        out: the report folder (created).

    Returns:
        ``{"markdown", "html", "plots", "rows", "front", "failed"}`` (paths as strings).

    Example:
        >>> write_sweep_report(*load_sweep("sweep.yaml"), "sweep_report")["front"][0]
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = list(spec.params)
    rows = sweep_points(trials)
    front = pareto_front(rows)
    size = SIZE_LABEL[spec.kind]
    plots = [_pareto_plot(rows, front, size, out / "pareto.png", spec.name)] if rows else []
    plots += [_param_plot(rows, p, out / f"param_{_slug(p)}.png") for p in params if rows]
    failed = [{"trial": t["trial"], "run_id": t["run_id"], "error": t["error"]} for t in trials if t["status"] != "done"]
    doc = {"sweep": sweep_id, "name": spec.name, "kind": spec.kind, "size": size, "params": params}
    md = _markdown(doc, trials, front, failed, plots)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", _html(doc, trials, front, failed, plots))
    atomic_write_text(out / "report.json", json.dumps({**doc, "points": rows, "front": front}, indent=1, default=float))
    return {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "plots": [str(p) for p in plots],
            "rows": rows, "front": front, "failed": failed}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _pareto_plot(rows: list[dict], front: list[dict], size: str, path: Path, title: str) -> Path:
    fig, ax = new_figure()
    ax.scatter([r["size"] for r in rows], [100 * r["test_accuracy"] for r in rows], s=14, alpha=0.6, label="trials")
    ax.step([r["size"] for r in front], [100 * r["test_accuracy"] for r in front], where="post", color="C3",
            marker="o", label="Pareto front")
    if max(r["size"] for r in rows) > 50 * max(min(r["size"] for r in rows), 1e-12):
        ax.set_xscale("log")
    return finish_axes(fig, ax, path, xlabel=size, ylabel="test accuracy (%)", title=f"{title}: size vs accuracy")


def _param_plot(rows: list[dict], param: str, path: Path) -> Path:
    """Test accuracy against one swept value: every point, and the mean per value."""
    fig, ax = new_figure(5, 3.5)
    groups = defaultdict(list)
    for r in rows:
        groups[r.get(param)].append(100 * r["test_accuracy"])
    numeric = all(isinstance(k, (int, float)) for k in groups)
    keys = sorted(groups, key=lambda k: k if numeric else str(k))
    xs = keys if numeric else list(range(len(keys)))
    for x, k in zip(xs, keys):
        ax.scatter([x] * len(groups[k]), groups[k], s=12, alpha=0.5, color="C0")
    ax.plot(xs, [sum(groups[k]) / len(groups[k]) for k in keys], color="C1", marker="o", label="mean")
    if not numeric:
        ax.set_xticks(xs, [str(k) for k in keys])
    elif min(keys) > 0 and max(keys) / min(keys) >= 100:
        ax.set_xscale("log")
    return finish_axes(fig, ax, path, xlabel=param, ylabel="test accuracy (%)", title=f"accuracy vs {param}")


def _table_rows(doc: dict, trials: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["trial", "run", *doc["params"], "status", "test accuracy", doc["size"], "seconds"]
    body = []
    for t in trials:
        res = t.get("result") or {}
        last = (res.get("points") or [{}])[-1]
        body.append([str(t["trial"]), t["run_id"], *(_fmt(t["params"].get(p)) for p in doc["params"]), t["status"],
                     _fmt(last.get("test_accuracy")), _fmt(last.get("size")), _fmt(res.get("seconds"))])
    return head, body


def _front_rows(doc: dict, front: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = [f"budget: {doc['size']} <=", "test accuracy", "trial", "run", *doc["params"]]
    return head, [[_fmt(r["size"]), _fmt(r["test_accuracy"]), str(r["trial"]), r["run_id"],
                   *(_fmt(r.get(p)) for p in doc["params"])] for r in front]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body])


def _markdown(doc, trials, front, failed, plots) -> str:
    parts = [f"# Sweep {doc['name']} ({doc['sweep']})", "",
             f"{len(trials)} {doc['kind']} trials over {', '.join(doc['params']) or 'no parameters'}; "
             f"{len(failed)} failed.", "", "## Best configuration per budget", "", _md_table(*_front_rows(doc, front)),
             "", "## Trials", "", _md_table(*_table_rows(doc, trials)), ""]
    if failed:
        parts += ["## Failed trials", "", _md_table(["trial", "run", "error"],
                                                     [[str(f["trial"]), f["run_id"], f["error"] or ""] for f in failed]), ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(parts) + "\n"


def _html_table(head: list[str], body: list[list[str]]) -> str:
    esc = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{rows}</table>"


def _html(doc, trials, front, failed, plots) -> str:
    esc = html.escape
    body = [f"<h1>Sweep {esc(doc['name'])} ({esc(doc['sweep'])})</h1>",
            "<h2>Best configuration per budget</h2>", _html_table(*_front_rows(doc, front)),
            "<h2>Trials</h2>", _html_table(*_table_rows(doc, trials))]
    if failed:
        body += ["<h2>Failed trials</h2>",
                 _html_table(["trial", "run", "error"], [[str(f["trial"]), f["run_id"], f["error"] or ""] for f in failed])]
    body += ["<h2>Plots</h2>"] + [f'<img src="{esc(p.name)}" alt="{esc(p.stem)}">' for p in plots]
    style = "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font:12px sans-serif}"
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
