"""Fuzz the ``.netp`` reader: the crafted mutator (byte damage, re-sealed section and manifest mutations, the
same as ``tests/encode/test_fuzz.py`` but many more cases and seed files) and coverage-guided atheris/libFuzzer
runs (plain byte mutation, and a structure-aware mode whose custom mutator re-seals manifest edits).

Per case: a typed ``NetpressError`` is a rejection; a load is compared with the original (untouched tensors
bit-identical); any other exception is a crash; per-case wall time and traced memory (numpy/Python
allocations, via tracemalloc) are recorded.

Run: ``nice -n 10 .venv/bin/python bench/fuzz.py [--cases 600] [--atheris-runs 4000]``
-> ``bench/results/fuzz.{json,md}``.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests" / "encode"))  # the mutators and crafting helpers live with the tests


# ---------------------------------------------------------------- seed files

def make_seeds(folder: Path) -> dict[str, Path]:
    """Small files covering every coding and position method: registry (Huffman), user model (auto: ANS and
    Huffman, buffers, raw tensors), packed, a thinned LeNet-5 and a low-rank LeNet-300."""
    import torch

    import netpress
    from encode_helpers import UserNet, magnitude_prune
    from netpress.lowrank import apply_ranks
    from netpress.models import build_model
    from netpress.prune.surgery import prune_structured
    from netpress.quantize import share_weights

    torch.manual_seed(0)
    seeds = {}
    reg = share_weights(magnitude_prune(build_model("lenet300", (1, 8, 8), 10, seed=0), 0.3), 4)
    user = UserNet()
    user.norm.running_var.uniform_(0.5, 2)
    user = share_weights(magnitude_prune(user, 0.5), {"conv.weight": 3, "fc.weight": 5})
    thin = prune_structured(build_model("lenet5", (1, 16, 16), 10, seed=0), 0.5, torch.randn(2, 1, 16, 16)).model
    low, _ = apply_ranks(build_model("lenet300", (1, 8, 8), 10, seed=0), {"features.0": 6})
    for name, model, coder in [("registry_huffman", reg, "huffman"), ("user_auto", user, "auto"),
                               ("registry_packed", reg, "packed"), ("thinned_lenet5", share_weights(thin, 3), "ans"),
                               ("lowrank_lenet300", low, "huffman")]:
        seeds[name] = folder / f"{name}.netp"
        netpress.save(model, seeds[name], coder=coder)
    return seeds


def loader(path: Path):
    """Registry files load as models (the spec path too), user files as state dicts."""
    import netpress
    from netpress.encode import read_manifest
    from netpress.prune.masks import plain_state_dict

    if read_manifest(path).get("model"):
        return lambda p: plain_state_dict(netpress.load(p))
    return lambda p: netpress.encode.load_state(p)[0]


# ---------------------------------------------------------------- the crafted mutator

def crafted(seeds: dict[str, Path], cases: int, seed: int, work: Path) -> dict:
    from fuzzing import KINDS, run_case

    counts, worst, crashes = collections.Counter(), {"seconds": 0.0, "traced_mb": 0.0}, []
    rng = random.Random(seed)
    for name, path in seeds.items():
        load = loader(path)
        blob, original = path.read_bytes(), load(path)
        for i in range(cases):
            tracemalloc.start()
            out = run_case(work / "case.netp", blob, original, KINDS[i % 3], rng, load)
            peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
            tracemalloc.stop()
            counts[(out.kind, out.result)] += 1
            if out.seconds > worst["seconds"]:
                worst["slowest"] = f"{name} {out.kind} {out.result}: {out.error[:150]}"
            worst["seconds"] = max(worst["seconds"], out.seconds)
            worst["traced_mb"] = max(worst["traced_mb"], peak)
            if out.result in ("crash", "corrupt"):
                crashes.append({"seed": name, "kind": out.kind, "result": out.result, "error": out.error[:300]})
    by = {f"{k}/{r}": n for (k, r), n in sorted(counts.items())}
    total = sum(counts.values())
    return {"cases": total, "rejected": sum(n for (k, r), n in counts.items() if r == "rejected"),
            "loaded": sum(n for (k, r), n in counts.items() if r in ("identical", "changed")),
            "crashes": sum(n for (k, r), n in counts.items() if r in ("crash", "corrupt")),
            "by_kind": by, "max_seconds": worst["seconds"], "slowest_case": worst.get("slowest"),
            "max_traced_mb": worst["traced_mb"],
            "crash_examples": crashes[:10]}


# ---------------------------------------------------------------- the bombs of issue 12, measured

def bombs(seeds: dict[str, Path], work: Path) -> list[dict]:
    """Each crafted bomb: file size, outcome, CPU seconds and traced memory of ``load``."""
    import netpress
    from craft import edit, seal, seal_body, split, tiny_codes_file
    from netpress.encode import container, load_state
    from netpress.errors import NetpressError

    frame = container.zstd_compress(bytes(1 << 28))
    zeros = {"format": "netp", "model": None, "metrics": {}, "tensors": [
        {"name": "z", "kind": "raw", "shape": [1 << 26], "dtype": "float32", "compression": "zstd", "section": "z"}]}
    manifest, sections = split(seeds["registry_huffman"].read_bytes())
    body = json.dumps(container.parse(seal(manifest, sections))[0]).encode()
    cases = {
        "200 Huffman streams, 65536-symbol chunks, 1 symbol each (valid)": tiny_codes_file(200, 1 << 16),
        "200 streams sharing one section": tiny_codes_file(200, 1 << 16, shared=True),
        "zstd frame declaring 2**26 float32 zeros": seal(zeros, {"z": frame}),
        "32 MB manifest (whitespace) in a few KB": seal_body(b" " * (32 << 20) + body, b"".join(sections.values())),
        "lenet300 spec with input [1, 4096, 4096]": edit(seeds["registry_huffman"].read_bytes(),
                                                         lambda m, s: m["model"].update(input_shape=[1, 4096, 4096])),
    }
    rows = []
    for label, blob in cases.items():
        path = work / "bomb.netp"
        path.write_bytes(blob)
        tracemalloc.start()
        start = time.process_time()
        try:
            netpress.load(path) if "spec" in label else load_state(path)
            outcome = "loaded"
        except NetpressError as exc:
            outcome = f"rejected: {str(exc)[:160]}"
        rows.append({"case": label, "bytes": len(blob), "outcome": outcome, "cpu_seconds": time.process_time() - start,
                     "traced_mb": tracemalloc.get_traced_memory()[1] / 2 ** 20})
        tracemalloc.stop()
    return rows


# ---------------------------------------------------------------- atheris (runs in a child process)

def atheris_worker(corpus: Path, out: Path, runs: int, seconds: int, structured: bool) -> None:
    """libFuzzer over the seed corpus; counters are flushed to ``out`` as JSON every 100 cases and at the end."""
    import atheris

    with atheris.instrument_imports(include=["netpress.encode", "netpress.models"]):
        import netpress.encode  # noqa: F401
        from netpress.encode import container, load_state
    from netpress.errors import NetpressError

    stats = {"cases": 0, "rejected": 0, "loaded": 0, "crashes": 0, "max_seconds": 0.0, "max_traced_mb": 0.0,
             "crash_examples": [], "errors": collections.Counter()}
    case = out.with_suffix(".case")

    def flush() -> None:
        out.write_text(json.dumps({**stats, "errors": dict(stats["errors"].most_common(15)),
                                   "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

    def test_one(data: bytes) -> None:
        case.write_bytes(data)
        tracemalloc.start()
        start = time.process_time()
        try:
            load_state(case)
            stats["loaded"] += 1
        except NetpressError as exc:
            stats["rejected"] += 1
            stats["errors"][_error_kind(str(exc))] += 1
        except Exception as exc:  # noqa: BLE001 - what the fuzzer hunts
            stats["crashes"] += 1
            if len(stats["crash_examples"]) < 10:
                stats["crash_examples"].append(f"{type(exc).__name__}: {exc}"[:200] + " | " +
                                               "".join(traceback.format_tb(exc.__traceback__)[-2:])[-400:])
        stats["max_seconds"] = max(stats["max_seconds"], time.process_time() - start)
        stats["max_traced_mb"] = max(stats["max_traced_mb"], tracemalloc.get_traced_memory()[1] / 2 ** 20)
        tracemalloc.stop()
        stats["cases"] += 1
        if stats["cases"] % 100 == 0:
            flush()

    def structured_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            try:
                container.parse(data)
                from fuzzing import mutate_manifest, mutate_section

                mutated = (mutate_manifest if rng.random() < 0.6 else mutate_section)(data, rng)[0]
                if len(mutated) <= max_size:
                    return mutated
            except Exception:  # noqa: BLE001 - not a valid container: fall back to byte mutation
                pass
        return atheris.Mutate(data, max_size)

    argv = [sys.argv[0], str(corpus), f"-runs={runs}", f"-max_total_time={seconds}", "-rss_limit_mb=4096",
            "-timeout=30", "-max_len=262144", "-print_final_stats=1"]
    atheris.Setup(argv, test_one, custom_mutator=structured_mutator if structured else None)
    try:
        atheris.Fuzz()
    finally:
        flush()


def _error_kind(message: str) -> str:
    """The message without the section name and numbers, to group rejections."""
    text = message.split(": ", 1)[-1]
    return "".join("#" if c.isdigit() else c for c in text)[:50]


def run_atheris(seeds: dict[str, Path], runs: int, seconds: int, structured: bool, work: Path) -> dict:
    corpus = work / ("corpus_s" if structured else "corpus_b")
    corpus.mkdir()
    for name, path in seeds.items():
        (corpus / name).write_bytes(path.read_bytes())
    out = work / ("atheris_s.json" if structured else "atheris_b.json")
    cmd = [sys.executable, __file__, "--atheris-worker", str(corpus), str(out), str(runs), str(seconds),
           str(int(structured))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 300)
    stats = json.loads(out.read_text()) if out.exists() else {"cases": 0}
    coverage = [ln for ln in proc.stderr.splitlines() if "cov:" in ln]
    stats.update(returncode=proc.returncode, wall_seconds=time.perf_counter() - start,
                 final_coverage=coverage[-1].split("cov:")[1].split()[0] if coverage else None,
                 libfuzzer_tail=proc.stderr.strip().splitlines()[-3:])
    return stats


# ---------------------------------------------------------------- report

def markdown(payload: dict) -> str:
    rows = [("crafted mutator", payload["crafted"])] + [(f"atheris ({k})", v) for k, v in payload["atheris"].items()]
    lines = ["# Fuzzing the .netp reader", "",
             f"Seed files: {', '.join(payload['seeds'])} ({payload['seed_bytes']} bytes in all). The machine was "
             f"shared with other jobs (2 cores, load average {payload['load_average']:.1f} at the start), so times are "
             "CPU seconds of this process and still upper bounds.", "",
             "| fuzzer | cases | typed rejections | loads (faithful) | crashes / silent corruption | max CPU s/case | "
             "max traced MB/case |", "|---|---|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s.get('cases', 0)} | {s.get('rejected', 0)} | {s.get('loaded', 0)} | "
                     f"{s.get('crashes', 0)} | {s.get('max_seconds', 0):.3f} | {s.get('max_traced_mb', 0):.1f} |")
    lines += ["", f"Slowest crafted case: {payload['crafted'].get('slowest_case')}"]
    by_kind = payload["crafted"]["by_kind"]
    lines += ["", "Crafted mutator, by kind/result: " + ", ".join(f"{k} {v}" for k, v in by_kind.items())]
    for name, s in payload["atheris"].items():
        lines.append(f"atheris {name}: final libFuzzer coverage {s.get('final_coverage')}, "
                     f"max RSS {s.get('max_rss_mb', 0):.0f} MB, {s.get('wall_seconds', 0):.0f} s wall.")
    lines += ["", "## The bombs of issue 12 (before: 612 B kept load busy 506 s; 1.5 KB cost 8.6 s and 548 MB)", "",
              "| crafted file | bytes | outcome | CPU s | traced MB |", "|---|---|---|---|---|"]
    lines += [f"| {b['case']} | {b['bytes']} | {b['outcome']} | {b['cpu_seconds']:.3f} | {b['traced_mb']:.1f} |"
              for b in payload["bombs"]]
    examples = list(payload["crafted"]["crash_examples"])
    for s in payload["atheris"].values():
        examples += s.get("crash_examples", [])
    lines += ["", "Crashes: " + ("none." if not examples else "")] + [f"- `{e}`" for e in examples[:10]]
    return "\n".join(lines)


def main() -> None:
    import torch

    torch.set_num_threads(1)  # as in the tests: with 2 threads on a loaded machine, OpenMP spin dominates CPU time
    if len(sys.argv) > 1 and sys.argv[1] == "--atheris-worker":
        corpus, out, runs, seconds, structured = sys.argv[2:7]
        atheris_worker(Path(corpus), Path(out), int(runs), int(seconds), structured == "1")
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=600, help="crafted-mutator cases per seed file")
    p.add_argument("--atheris-runs", type=int, default=4000, help="libFuzzer runs per atheris mode (0: skip)")
    p.add_argument("--atheris-seconds", type=int, default=240, help="time limit per atheris mode")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from common import write_result

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = make_seeds(work)
        payload = {"seeds": {k: v.stat().st_size for k, v in seeds.items()}, "load_average": os.getloadavg()[0],
                   "seed_bytes": sum(v.stat().st_size for v in seeds.values()),
                   "bombs": bombs(seeds, work), "crafted": crafted(seeds, args.cases, args.seed, work), "atheris": {}}
        if args.atheris_runs:
            for structured in (False, True):
                payload["atheris"]["structured" if structured else "bytes"] = run_atheris(
                    seeds, args.atheris_runs, args.atheris_seconds, structured, work)
    write_result("fuzz", payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
