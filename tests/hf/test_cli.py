"""``netpress compress --hf`` end to end, then inspect / evaluate / decompress; one-line errors before any work."""
from __future__ import annotations

import json

import pytest
import torch

import netpress.hf
from netpress.cli.main import main


def run_json(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_compress_inspect_evaluate_decompress(tiny_folder, calib_file, tmp_path, capsys, make_sentences):
    out = tmp_path / "tiny.netp"
    held = tmp_path / "held.txt"
    held.write_text("\n".join(make_sentences(12, seed=7)))
    made = run_json(capsys, "compress", "--hf", str(tiny_folder), "--calib", str(calib_file), "--recipe",
                    "pretrained-8bit", "--out", str(out), "--eval-text", str(held))
    assert made["bytes"] == out.stat().st_size and made["ratio"] == pytest.approx(made["fp32_bytes"] / made["bytes"])
    assert made["ratio"] > 3  # 8-bit codes + scale and zero point per channel
    assert made["cosine_mean"] > 0.99 and (tmp_path / "tiny_report.md").exists()

    shown = run_json(capsys, "inspect", str(out))
    assert shown["file_bytes"] == out.stat().st_size
    assert shown["recipe"]["architecture"]["config"]["hidden_size"] == 32
    assert main(["inspect", str(out)]) == 0 and f"{tiny_folder.name} (bert)" in capsys.readouterr().out
    plan = run_json(capsys, "inspect", str(out), "--runtime")  # timed on random token ids of the stored vocab
    assert 0 < plan["resident_bytes"] <= plan["dense_bytes"]  # tiny layers may all stay dense: timing decides
    assert plan["plan"]["lean_layers"] == ["transformer.encoder.layer.0", "transformer.encoder.layer.1"]
    assert main(["inspect", str(out), "--runtime"]) == 0
    text = capsys.readouterr().out
    assert "2 lean encoder layers" in text
    rows = [line.split() for line in text.splitlines()]
    kinds = {r[0]: r[3] for r in rows if len(r) > 3 and r[0].startswith("transformer.")}
    query = kinds["transformer.encoder.layer.0.attention.self.query"]
    assert query in ("dense", "int8", "lowbit", "int8+fused")  # fused with key/value where that timed faster
    assert "transformer.embeddings.word_embeddings" in kinds

    measured = run_json(capsys, "evaluate", str(out), "--hf", str(tiny_folder), "--text", str(held))
    assert measured["cosine_mean"] == pytest.approx(made["cosine_mean"], abs=1e-6)  # same held-out sentences
    assert measured["sentences"] == 12 and 0 <= measured["nn_agreement"] <= 1

    st = tmp_path / "tiny.safetensors"
    run_json(capsys, "decompress", str(out), "--out", str(st))
    from safetensors.torch import load_file

    decoded = load_file(str(st))
    loaded = netpress.hf.load(out)
    assert set(decoded) == set(loaded.state_dict())
    assert all(torch.equal(decoded[k], v) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("case, message", [
    ("folder", "no model folder"),
    ("empty", "has no sentences"),
    ("recipe", "no recipe 'banana': built-in recipes are pretrained-8bit"),
    ("nocalib", "--hf needs --calib"),
])
def test_errors_are_one_line_and_before_any_work(tiny_folder, calib_file, tmp_path, capsys, case, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    folder = str(tmp_path / "nope") if case == "folder" else str(tiny_folder)
    argv = ["compress", "--hf", folder, "--out", str(tmp_path / "x.netp"), "--recipe",
            "banana" if case == "recipe" else "pretrained-4bit"]
    argv += [] if case == "nocalib" else ["--calib", str(empty if case == "empty" else calib_file)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("netpress: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.netp").exists()
