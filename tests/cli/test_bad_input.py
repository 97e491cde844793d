"""Bad input to the command line: one ``netpress: error:`` line, exit 2, no traceback, nothing created, before work.

Each case builds its hostile input in a fresh folder, runs ``netpress`` in-process, and compares the folder tree
before and after: the only thing a rejected command may leave is the (empty) runs folder and its database.
"""
from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from netpress.cli.main import build_parser, main
from netpress.data import write_idx

SYN = ["--data", "synthetic"]


def _run_folder(root: Path, model_pt: bytes | None = None, hparams: str | None = None) -> Path:
    """A finished-looking run folder with the given (possibly hostile) files."""
    folder = root / "train_0123456789ab"
    folder.mkdir(parents=True)
    (folder / "hparams.json").write_text(hparams if hparams is not None else json.dumps({"kind": "train"}))
    (folder / "result.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (folder / "model.pt").write_bytes(model_pt if model_pt is not None else b"")
    return folder


def _pickle_bytes(tmp: Path) -> bytes:
    torch.save(torch.nn.Linear(2, 2), tmp / "m.pkl")  # a whole module: an arbitrary pickle
    data = (tmp / "m.pkl").read_bytes()
    (tmp / "m.pkl").unlink()
    return data


def _model_bytes(tmp: Path) -> bytes:
    """A valid run checkpoint of a tiny registry model."""
    from netpress.models import ModelHparams, build_model

    model = build_model(ModelHparams("lenet300"), (1, 8, 8), 4, seed=0)
    torch.save({"spec": model.netpress_spec, "state": model.state_dict()}, tmp / "m.pt")
    data = (tmp / "m.pt").read_bytes()
    (tmp / "m.pt").unlink()
    return data


def _huge_spec_bytes(tmp: Path) -> bytes:
    """A checkpoint whose spec asks for a 4096 x 4096 input (26e9 parameters) with the tensors of a tiny model."""
    from netpress.models import ModelHparams, build_model

    model = build_model(ModelHparams("lenet5"), (1, 28, 28), 10, seed=0)
    spec = {**model.netpress_spec, "input_shape": [1, 4096, 4096]}
    torch.save({"spec": spec, "state": model.state_dict()}, tmp / "m.pt")
    data = (tmp / "m.pt").read_bytes()
    (tmp / "m.pt").unlink()
    return data


def _gzip_bomb(folder: Path) -> Path:
    """IDX header for 10 x 28 x 28 training images followed by 64 MB of zeros, gzipped to ~64 KB."""
    folder.mkdir()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header)
        for _ in range(64):
            fh.write(bytes(1 << 20))
    return folder


def _recipe(tmp: Path, body: bytes | str) -> Path:
    p = tmp / "recipe.yaml"
    p.write_bytes(body if isinstance(body, bytes) else body.encode())
    return p


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                       + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
                       + ["stages: [{prune: {sparsity: *i}}]"])

# (id, argv builder(tmp) -> argv, expected message part)
CASES = [
    ("device-cuda", lambda t: ["train", *SYN, "--device", "cuda"], "device 'cuda' is not available"),
    ("device-tpu", lambda t: ["train", *SYN, "--device", "tpu"], "unknown device 'tpu'"),
    ("gzip-bomb", lambda t: ["train", "--data", "fashion-mnist", "--data-dir", str(_gzip_bomb(t / "d"))],
     "IDX body has more than 7840 bytes"),
    ("data-dir-missing", lambda t: ["train", *SYN, "--data-dir", str(t / "nonexistent")], "does not exist"),
    ("prune-out-missing-folder", lambda t: ["prune", *SYN, "--sparsity", "0.5", "--out", str(t / "no" / "m.st")],
     "does not exist"),
    ("prune-out-is-folder", lambda t: ["prune", *SYN, "--sparsity", "0.5", "--out", str(t)], "is a folder"),
    ("quantize-out-missing-folder", lambda t: ["quantize", *SYN, "--out", str(t / "no" / "m.netp")], "does not exist"),
    ("quantize-out-is-folder", lambda t: ["quantize", *SYN, "--out", str(t)], "is a folder"),
    ("quantize-out-under-a-file", lambda t: ["quantize", *SYN, "--out", str(_recipe(t, "x") / "m.netp")],
     "is not a folder"),
    ("compress-out-missing-folder", lambda t: ["compress", *SYN, "--out", str(t / "no" / "m.netp")], "does not exist"),
    ("compress-out-is-folder", lambda t: ["compress", *SYN, "--out", str(t)], "is a folder"),
    ("compress-report-is-file", lambda t: ["compress", *SYN, "--report", str(_recipe(t, "x"))], "is a file"),
    ("decompress-out-missing-folder", lambda t: ["decompress", "x.netp", "--out", str(t / "no" / "m.st")],
     "does not exist"),
    ("decompress-out-is-folder", lambda t: ["decompress", "x.netp", "--out", str(t)], "is a folder"),
    ("lowrank-spectrum-missing-folder", lambda t: ["lowrank", *SYN, "--spectrum", str(t / "no" / "s.png")],
     "does not exist"),
    ("distill-out-is-file", lambda t: ["distill", *SYN, "--teacher", "x", "--out", str(_recipe(t, "x"))],
     "is a file; give a folder"),
    ("distill-unknown-teacher", lambda t: ["distill", *SYN, "--teacher", "train_nope"], "no run 'train_nope'"),
    ("run-garbage-model", lambda t: ["prune", "--from", str(_run_folder(t / "r", b"\x00garbage" * 50)),
                                     "--sparsity", "0.5"], "not a usable netpress checkpoint"),
    ("run-pickle-model", lambda t: ["quantize", "--from", str(_run_folder(t / "r", _pickle_bytes(t)))],
     "not a usable netpress checkpoint"),
    ("run-huge-spec", lambda t: ["quantize", *SYN, "--from", str(_run_folder(t / "r", _huge_spec_bytes(t)))],
     "do not fit the model its spec describes"),
    ("run-empty-model", lambda t: ["compress", "--from", str(_run_folder(t / "r"))],
     "not a usable netpress checkpoint"),
    ("run-malformed-hparams",
     lambda t: ["quantize", "--from", str(_run_folder(t / "r", _model_bytes(t), "{not json"))], "not JSON"),
    ("run-hparams-not-object",
     lambda t: ["quantize", "--from", str(_run_folder(t / "r", _model_bytes(t), "[1, 2]"))], "not a JSON object"),
    ("run-hparams-no-training",
     lambda t: ["compress", *SYN, "--from", str(_run_folder(t / "r", _model_bytes(t), "{}"))], "no 'training' mapping"),
    ("run-hparams-bad-data", lambda t: ["quantize", "--from", str(_run_folder(t / "r", _model_bytes(t),
                                                                              '{"data": {"val_size": "x"}}'))],
     "hparams.json, 'data'"),
    ("corrupt-checkpoint", lambda t: ["train", *SYN], "is not a usable checkpoint"),
    ("home-is-a-file", lambda t: ["train", *SYN], "is not a folder"),
    ("corrupt-db", lambda t: ["train", *SYN], "runs database"),
    ("recipe-alias-bomb", lambda t: ["compress", *SYN, "--recipe", str(_recipe(t, ALIAS_BOMB))], "aliases"),
    ("recipe-deep-nesting", lambda t: ["compress", *SYN, "--recipe", str(_recipe(t, "[" * 50_000 + "]" * 50_000))],
     "nested deeper than"),
    ("recipe-not-utf8", lambda t: ["compress", *SYN, "--recipe", str(_recipe(t, b"stages:\n  - prune: {}\n\xff\xfe"))],
     "not UTF-8"),
    ("recipe-layers-list", lambda t: ["compress", *SYN, "--recipe",
                                      str(_recipe(t, "stages:\n  - prune: {layers: [1, 2]}\n"))], "must be a mapping"),
    ("prune-structured-iterative", lambda t: ["prune", *SYN, "--sparsity", "0.5", "--structured", "--schedule",
                                              "iterative:2"], "structured pruning runs one-shot"),
    ("prune-retrain-steps-negative", lambda t: ["prune", *SYN, "--sparsity", "0.5", "--retrain-steps", "-1ep"],
     "steps '-1ep' is negative"),
    ("prune-unknown-exclude", lambda t: ["prune", *SYN, "--sparsity", "0.5", "--exclude", "nope.weight"],
     "cannot exclude "),
    ("quantize-bad-axis", lambda t: ["quantize", *SYN, "--method", "uniform", "--granularity", "channel",
                                     "--axis", "7"], "axis 7 out of range"),
    ("quantize-bad-group", lambda t: ["quantize", *SYN, "--method", "uniform", "--granularity", "group",
                                      "--group-size", "7"], "group_size 7 does not divide"),
    ("quantize-too-many-bits", lambda t: ["quantize", *SYN, "--method", "kmeans", "--bits", "16"],
     "k=65536 shared values but only 19200 weights"),
    ("quantize-unknown-exclude", lambda t: ["quantize", *SYN, "--exclude", "nope"], "cannot exclude "),
    ("lr-infinite", lambda t: ["train", *SYN, "--lr", "inf"], "lr must be > 0 and finite"),
    ("empty-run-reference", lambda t: ["distill", *SYN, "--teacher", ""], "empty run reference"),
    ("quantize-unknown-method", lambda t: ["quantize", *SYN, "--method", "magic"], "unknown method 'magic'"),
    ("no-command", lambda t: [], "required: COMMAND (one of train, runs, "),
    ("unknown-command", lambda t: ["trian"], "invalid choice: 'trian'"),
    ("missing-required", lambda t: ["prune", *SYN], "required: --sparsity"),
    ("bad-float", lambda t: ["train", *SYN, "--lr", "abc"], "invalid float value: 'abc'"),
    ("negative-steps", lambda t: ["train", *SYN, "--steps", "-5ep"], "steps '-5ep' is negative"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case,build,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_before_any_work(case, build, match, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    home = tmp_path / "home"
    monkeypatch.setenv("NETPRESS_HOME", str(home))
    if case == "home-is-a-file":
        home.write_text("not a folder")
    if case == "corrupt-db":
        home.mkdir()
        (home / "netpress.db").write_bytes(b"this is not a SQLite database" * 100)
    if case == "corrupt-checkpoint":  # an interrupted run of exactly this command, with a damaged checkpoint
        from netpress.cli import common
        from netpress.runs import run_id

        args = build_parser().parse_args(["train", *SYN])
        folder = home / run_id("train", common.model_hparams(args), common.data_hparams(args),
                               common.training_hparams(args))
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a zip" * 10)
    argv = build(work)
    before = _tree(tmp_path)
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("netpress: error: "), err
    assert match in lines[0] and "Traceback" not in err and out == ""
    created = {p for p in _tree(tmp_path) - before if not p.endswith("/.lock")}  # a lock in an existing run folder
    assert created <= {"home", "home/netpress.db"}, f"left behind: {sorted(created)}"
    assert not list(home.glob("train_*/checkpoint.pt"))  # a damaged checkpoint is discarded, not resumed next time
    assert elapsed < 30  # rejected up front (a run that trained would take far longer on a loaded machine)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
@pytest.mark.parametrize("what", ["home", "out"])
def test_unwritable_folders_are_refused(what, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if what == "home":
            monkeypatch.setenv("NETPRESS_HOME", str(ro))
            argv = ["train", *SYN]
        else:
            argv = ["quantize", *SYN, "--out", str(ro / "m.netp")]
        assert main(argv) == 2
        assert "not writable" in capsys.readouterr().err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
