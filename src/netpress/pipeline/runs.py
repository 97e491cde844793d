"""Compression of a stored training run: the working folder is keyed by the run and the recipe, and locked; it
records the torch thread count, and a resumed compression uses it (results depend on it)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from netpress.fileio import atomic_write_text
from netpress.pipeline.compress import CompressResult, compress
from netpress.pipeline.recipe import Recipe
from netpress.runs import TrainedRun, read_json, run_lock, run_part, runs_root, torch_threads
from netpress.train import TrainingHparams

THREADS_FILE = "threads.json"


def compress_run(start: TrainedRun, recipe: Recipe, *, out: str | Path, report_dir: str | Path | None = None,
                 root: str | Path | None = None, device: str = "auto") -> CompressResult:
    """Run ``recipe`` on a trained run's model, resuming the same (run, recipe) pair where it stopped.

    Args:
        start: the trained run (``netpress.runs.train_run`` or ``load_trained_run``).
        recipe: a loaded recipe.
        out: the ``.netp`` file.
        report_dir: report folder (default: ``<out without .netp>_report``).
        root: runs folder (the working folder ``compress_<key>`` lives there).
        device: training device.

    Returns:
        :class:`CompressResult`; ``result.folder`` is the working folder.

    Raises:
        RunError: the run's ``hparams.json`` has no valid ``training`` section.

    Example:
        >>> result = compress_run(train_run(model_hp, data_hp, train_hp), load_recipe("deep-compression"), out="m.netp")
    """
    out = Path(out)
    base_hp = run_part(start.path, "training", TrainingHparams)
    workdir = runs_root(root) / compress_run_id(start.id, recipe)
    name = getattr(start.model, "netpress_spec", {}).get("name", type(start.model).__name__)
    with run_lock(workdir), torch_threads(_threads(workdir)):
        return compress(start.model, start.data, recipe=recipe, train_hp=base_hp, out=out, workdir=workdir,
                        report_dir=Path(report_dir) if report_dir else out.with_name(out.stem + "_report"),
                        title=f"{recipe.name}: {name} on {start.data.name}", device=device)


def _threads(workdir: Path) -> int:
    """The torch thread count this compression started with (results depend on it), recorded on first use."""
    path = workdir / THREADS_FILE
    if path.exists():
        n = read_json(path).get("torch_threads")
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            return n
    n = torch.get_num_threads()
    atomic_write_text(path, json.dumps({"torch_threads": n}) + "\n")
    return n


def compress_run_id(dense_id: str, recipe) -> str:
    """The run id of a recipe applied to a trained run (the folder name ``netpress compress`` gives its workdir).

    Args:
        dense_id: the trained run's id.
        recipe: a :class:`netpress.pipeline.Recipe`.

    Returns:
        ``'compress_<hash of the run id and the recipe digest>'``.

    Example:
        >>> compress_run_id("train_ab12", load_recipe("deep-compression")).startswith("compress_")
        True
    """
    return "compress_" + hashlib.sha256(f"{dense_id}|{recipe.digest()}".encode()).hexdigest()[:12]
