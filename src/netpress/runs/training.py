"""The ``train`` stage as a content-addressed, idempotent, resumable run."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from netpress.data import DataHparams, DataSplits, load_data
from netpress.errors import NetpressError, RunError
from netpress.models import ModelHparams, build_model, model_from_spec
from netpress.fileio import atomic_torch_save, atomic_write_text
from netpress.hparams import H, Hparams
from netpress.runs.paths import run_id, run_lock, runs_root, write_hparams
from netpress.runs.store import Store
from netpress.train import TrainingHparams, TrainResult, resolve_device, train

FINAL = "model.pt"
THREADS = "torch_threads"
RESULT = "result.json"


@dataclasses.dataclass
class TrainedRun:
    """A finished training run: the model with its final weights and its summary."""

    id: str
    path: Path
    model: nn.Module
    summary: dict
    data: DataSplits
    reused: bool  # True when nothing was trained (the run was already finished)


def train_run(
    model_hp: ModelHparams,
    data_hp: DataHparams,
    train_hp: TrainingHparams,
    *,
    root: str | Path | None = None,
    data: DataSplits | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    progress: bool | None = None,
) -> TrainedRun:
    """Train a registry model on a registry dataset, or reuse/resume the run with the same hash.

    Args:
        model_hp, data_hp, train_hp: what to train; the run folder is named by their non-default values.
        root: runs folder (default ``$NETPRESS_HOME`` or ``./netpress_runs``).
        data: already-loaded splits (else loaded from ``data_hp``).
        data_dir: where the data files are.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: progress bar (default: only on a terminal).

    Returns:
        :class:`TrainedRun`.

    Example:
        >>> run = train_run(ModelHparams("lenet300"), DataHparams("fashion-mnist"), TrainingHparams(steps="2ep"))
    """
    resolve_device(device)  # an unavailable device fails before any folder is made
    root = runs_root(root)
    rid = run_id("train", model_hp, data_hp, train_hp)
    folder = root / rid
    store = Store(root)
    data = data or load_data(data_hp, data_dir)
    parts = {"model": model_hp, "data": data_hp, "training": train_hp}
    with run_lock(folder):
        return _train_locked(rid, folder, store, parts, data, device, progress)


def _train_locked(rid, folder, store, parts, data, device, progress) -> TrainedRun:
    model_hp, train_hp = parts["model"], parts["training"]
    flat = {k: v.to_dict() for k, v in parts.items()}
    if (folder / RESULT).exists():
        summary = run_summary(folder)
        store.upsert_run(rid, "train", folder, flat, "done", summary)
        return TrainedRun(rid, folder, load_run_model(folder), summary, data, reused=True)
    threads = recorded_threads(folder)
    write_hparams(folder, "train", parts, extra={THREADS: threads})
    store.upsert_run(rid, "train", folder, flat, "running")
    try:
        with torch_threads(threads):
            model = build_model(model_hp, data.input_shape, data.num_classes, seed=train_hp.seed)
            _save_init(folder, model)
            result = train(model, data, train_hp, checkpoint_dir=folder, device=device, progress=progress,
                           desc=f"train {model_hp.name}")
    except Exception:
        _discard(folder)  # a failed or diverged run leaves nothing a later run would resume or trust
        store.upsert_run(rid, "train", folder, flat, "failed")
        raise
    summary = {**result.summary(), "resumed_from": result.resumed_from, THREADS: threads}
    _finish(folder, model, result, summary)
    store.log_metrics(rid, result.metrics)
    store.upsert_run(rid, "train", folder, flat, "done", summary)
    return TrainedRun(rid, folder, model.cpu(), summary, data, reused=False)


def recorded_threads(folder: Path) -> int:
    """The torch thread count an interrupted run (training or lottery) recorded in its ``hparams.json`` (its
    results depend on it), else the current one."""
    if (folder / "hparams.json").exists():
        recorded = run_hparams(folder).get(THREADS)
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
            return recorded
    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``torch.set_num_threads(n)``, restoring the previous count afterwards.

    Float sums are split differently across threads, so 1 and 2 threads give slightly different weights; a run
    records its count in ``hparams.json`` and a resume uses it, so a resumed run ends bit-identical.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _discard(folder: Path) -> None:
    for f in folder.iterdir():
        if f.name != ".lock" and f.is_file():
            f.unlink()


def write_run(folder: str | Path, kind: str, parts: dict[str, Hparams], model: nn.Module, summary: dict,
              extra: dict | None = None) -> Path:
    """Write a finished run folder (``hparams.json``, ``model.pt``, ``result.json`` last) for a model made outside
    :func:`train_run` (e.g. a distilled student), so ``--from`` and :func:`load_run_model` accept it.

    Args:
        folder: the run folder (created).
        kind: the run kind, e.g. ``'distill'``.
        parts: the typed hyperparameters by section.
        model: a registry model (it has ``netpress_spec``).
        summary: the result (``result.json``).
        extra: more ``hparams.json`` fields.

    Returns:
        ``Path(folder)``.

    Example:
        >>> write_run("student", "distill", {"model": model_hp, "training": train_hp}, student, {"test_accuracy": 0.9})
    """
    folder = Path(folder)
    write_hparams(folder, kind, parts, extra=extra)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"spec": model.netpress_spec, "state": state}, folder / FINAL)
    atomic_write_text(folder / RESULT, json.dumps(summary, indent=2, default=str) + "\n")  # last: marks it done
    return folder


def _save_init(folder: Path, model: nn.Module) -> None:
    path = folder / "init.pt"
    if not path.exists():
        atomic_torch_save({"spec": model.netpress_spec, "state": model.state_dict()}, path)


def _finish(folder: Path, model: nn.Module, result: TrainResult, summary: dict) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"spec": model.netpress_spec, "state": state}, folder / FINAL)
    atomic_write_text(folder / "metrics.json", json.dumps(result.metrics, indent=1))
    atomic_write_text(folder / RESULT, json.dumps(summary, indent=2) + "\n")  # written last: marks the run done


def load_run_model(folder: str | Path, which: str = FINAL) -> nn.Module:
    """Rebuild a run's model (``model.pt`` = trained, ``init.pt`` = initial weights) without unpickling modules.

    Raises:
        RunError: the file is missing, not a netpress checkpoint (garbage, a pickle of objects), or does not fit
            the model its spec describes.
    """
    path = Path(folder) / which
    if not path.is_file():
        raise RunError(f"run {folder} has no {which} (unfinished or failed; re-run the command that made it)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or not isinstance(ck.get("spec"), dict) or not isinstance(ck.get("state"), dict):
            raise RunError(f"{path} is not a netpress checkpoint (no spec and state)")
        _check_fits(path, ck["spec"], ck["state"])
        model = model_from_spec(ck["spec"])
        model.load_state_dict(ck["state"])
    except NetpressError:
        raise
    except Exception as exc:  # torch.load / model building on a hostile file can raise nearly anything
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{path} is not a usable netpress checkpoint ({reason})") from None
    return model


def _check_fits(path: Path, spec: dict, state: dict) -> None:
    """Build the spec's model on the meta device (no memory) and compare every shape with the stored tensors, so a
    hostile spec cannot make us allocate more than the file holds."""
    with torch.device("meta"):
        skeleton = model_from_spec(spec)
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}
    if want != got:
        wrong = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise RunError(f"{path}: the stored tensors do not fit the model its spec describes ({', '.join(wrong[:4])})")


def resolve_run(ref: str, root: str | Path | None = None) -> Path:
    """A run folder from a path, a run id, or a unique id prefix.

    Raises:
        NetpressError: naming the candidates when the reference is unknown or ambiguous.
    """
    if not ref:
        raise RunError("empty run reference: give a run id, id prefix or folder")
    p = Path(ref)
    if (p / "hparams.json").exists():
        return p
    root = runs_root(root)
    if (root / ref / "hparams.json").exists():
        return root / ref
    matches = [r for r in Store(root).list_runs() if r["id"].startswith(ref) or r["id"].split("_", 1)[-1].startswith(ref)]
    if len(matches) == 1:
        return Path(matches[0]["path"])
    if not matches:
        raise RunError(f"no run {ref!r} in {root} (see `netpress runs list`)")
    raise RunError(f"run reference {ref!r} is ambiguous: {', '.join(m['id'] for m in matches)}")


def run_hparams(folder: str | Path) -> dict:
    """A run's ``hparams.json``.

    Raises:
        RunError: missing, unreadable or not a JSON object.
    """
    return read_json(Path(folder) / "hparams.json")


def run_summary(folder: str | Path) -> dict:
    """A finished run's ``result.json`` (its summary); the file marks the run done.

    Raises:
        RunError: missing (the run is not finished), unreadable or not a JSON object.
    """
    path = Path(folder) / RESULT
    if not path.is_file():
        raise RunError(f"run {folder} is not finished (no {RESULT}); re-run the command that made it to resume")
    return read_json(path)


def read_json(path: str | Path) -> dict:
    """A JSON object from a run's file.

    Raises:
        RunError: missing, unreadable, not JSON, or not an object.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{path} is unreadable or not JSON ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(doc, dict):
        raise RunError(f"{path} is not a JSON object")
    return doc


def run_part(folder: str | Path, key: str, cls: type[H]) -> H:
    """One typed section of a run's ``hparams.json`` (``'data'``, ``'training'``, ...).

    Raises:
        RunError: the section is missing or does not make a valid ``cls``.

    Example:
        >>> train_hp = run_part(folder, "training", TrainingHparams)
    """
    doc = run_hparams(folder).get(key)
    if not isinstance(doc, dict):
        raise RunError(f"{folder}/hparams.json has no {key!r} mapping")
    try:
        return cls.from_dict(doc)
    except (NetpressError, TypeError, ValueError) as exc:
        raise RunError(f"{folder}/hparams.json, {key!r}: {' '.join(str(exc).split())[:200]}") from None


def load_trained_run(ref: str, root: str | Path | None = None, data_dir: str | None = None,
                     data_hp: DataHparams | None = None) -> TrainedRun:
    """A finished run (id, id prefix or folder) with its model, summary and the data it was trained on.

    Args:
        ref: run id, id prefix or folder.
        root: runs folder.
        data_dir: where the data files are.
        data_hp: data to load when the run does not record its own.

    Returns:
        :class:`TrainedRun` with ``reused=True``.

    Raises:
        RunError: unknown, unfinished or corrupt run.

    Example:
        >>> run = load_trained_run("train_3f2a")
    """
    folder = resolve_run(ref, root)
    summary = run_summary(folder)
    if "data" in run_hparams(folder):
        data_hp = run_part(folder, "data", DataHparams)
    model = load_run_model(folder)
    data = load_data(data_hp or DataHparams(), data_dir)
    return TrainedRun(folder.name, folder, model, summary, data, reused=True)
