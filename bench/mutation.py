"""Targeted mutation testing: does the test suite notice when the code is broken on purpose?

Each mutant replaces one snippet of ``src/netpress`` by a plausible bug (a flipped ranking, a dropped reset, a
skipped check, a wrong constant). The mutant is applied to a temporary copy of ``src/`` (never to the working
tree), and the test files that cover that code run against the copy with a timeout. A mutant is *killed* when
the tests fail (or time out), *survived* when they pass; a snippet that no longer occurs in the source is
reported as *stale* (the code changed: update the mutant). The score is killed / (killed + survived) per package.

Usage:
    python bench/mutation.py                    # every mutant (~10-20 min on a loaded 2-core machine)
    python bench/mutation.py --only rigl,ans    # mutants whose id contains any of these substrings
    python bench/mutation.py --list
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("prune", "quantize", "encode", "pipeline", "lottery", "distill")  # the issue asks for the first three


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One deliberate bug.

    Attributes:
        id: short unique name.
        file: path under ``src/netpress``.
        original: the exact snippet (must occur once in the file).
        mutated: what it becomes.
        description: the bug in words.
        tests: test files (or node ids) that should notice.
    """

    id: str
    file: str
    original: str
    mutated: str
    description: str
    tests: tuple[str, ...]

    @property
    def package(self) -> str:
        return self.file.split("/")[0]


def M(id, file, original, mutated, description, *tests):  # noqa: N802 - a compact table constructor
    return Mutant(id, file, original, mutated, description, tuple(tests))


# Test subsets: the files that cover the mutated code, the most targeted first (pytest -x stops at the first failure).
T_PRUNE = ("tests/prune/test_core.py", "tests/prune/test_scores.py", "tests/prune/test_mask_invariants.py")
T_SPARSE = ("tests/prune/test_sparse_training.py", "tests/prune/test_schedules.py")
T_CORE = ("tests/prune/test_scores.py", "tests/prune/test_core.py")
T_BINARY = ("tests/quantize/test_quant_exact.py", "tests/quantize/test_quant_ptq_qat.py")
T_UNIFORM = ("tests/quantize/test_quant_exact.py", "tests/quantize/test_quant_uniform.py")
T_SHARING = ("tests/quantize/test_quant_sharing.py", "tests/quantize/test_quant_exact.py",
             "tests/quantize/test_quant_digits.py")
T_ANS = ("tests/encode/test_ans.py", "tests/encode/test_netp_corruption.py")
T_HUFFMAN = ("tests/encode/test_huffman.py", "tests/encode/test_netp_corruption.py")
T_POSITIONS = ("tests/encode/test_positions.py", "tests/encode/test_netp_container.py")
T_ENUM = ("tests/encode/test_enum_positions.py", "tests/encode/test_positions.py")
T_CONTAINER = ("tests/encode/test_netp_corruption.py", "tests/encode/test_netp_container.py")
T_ENCODE = ("tests/encode",)  # checks several files may exercise: the whole encode suite
T_STAGES = ("tests/pipeline/test_stages.py",)
T_COMPRESS = ("tests/pipeline/test_compress.py",)
T_SEARCH = ("tests/pipeline/test_search.py",)
T_BUDGET = ("tests/pipeline/test_budget.py",)
T_LMC = ("tests/lottery/test_lottery_lmc.py",)
T_DISTILL = ("tests/distill/test_loss.py", "tests/distill/test_distill.py")

MUTANTS: list[Mutant] = [
    # --- prune: dynamic sparse training
    M("rigl-grow-by-weight", "prune/sparse_training.py", "return {n: g.abs() for n, g in grads.items()}",
      "return {n: mods[n][0].parametrizations[mods[n][1]].original.detach().abs() for n in grads}",
      "RigL regrows by |w| instead of |grad|", *T_SPARSE),
    M("sparse-drop-largest", "prune/sparse_training.py", "drop = torch.topk(mag, k, largest=False).indices",
      "drop = torch.topk(mag.masked_fill(~active, -math.inf), k, largest=True).indices",
      "SET/RigL drop the largest active weights", *T_SPARSE),
    M("sparse-no-weight-reset", "prune/sparse_training.py", "            p[grown.to(p.device)] = 0\n",
      "            pass\n", "regrown weights keep their old values", *T_SPARSE),
    M("sparse-no-optimizer-reset", "prune/sparse_training.py", "                    v[grown.to(v.device)] = 0",
      "                    pass", "regrown weights keep their optimizer moments", *T_SPARSE),
    M("sparse-regrow-dropped", "prune/sparse_training.py",
      "g = grow_score.reshape(-1).cpu().double().masked_fill(active, -math.inf)",
      "g = grow_score.reshape(-1).cpu().double()", "regrowth may pick already active weights", *T_SPARSE),
    M("sparse-no-decay", "prune/sparse_training.py",
      "return self.alpha / 2 * (1 + math.cos(math.pi * min(iteration, self.end) / self.end))",
      "return self.alpha", "the drop fraction does not decay", *T_SPARSE),
    # --- prune: scores and masks
    M("taylor-unmasked", "prune/scores.py", "weights = {n: getattr(m, a).detach() for n, (m, a) in tensors.items()}",
      "weights = {n: (m.parametrizations[a].original if hasattr(m, 'parametrizations') and a in m.parametrizations "
      "else getattr(m, a)).detach() for n, (m, a) in tensors.items()}",
      "Taylor/SNIP multiply the gradient by the unmasked weights", *T_CORE),
    M("taylor-no-abs", "prune/scores.py", "return {n: (grads[n] * weights[n]).abs() for n in tensors}",
      "return {n: grads[n] * weights[n] for n in tensors}", "Taylor score keeps the sign", *T_CORE),
    M("magnitude-signed", "prune/scores.py", "return {n: getattr(m, a).detach().abs() for n, (m, a) in tensors.items()}",
      "return {n: getattr(m, a).detach() for n, (m, a) in tensors.items()}", "magnitude score keeps the sign",
      *T_PRUNE),
    M("gradient-one-batch", "prune/scores.py", "return {n: (g / len(todo)).detach() for n, g in grads.items()}",
      "return {n: g.detach() for n, g in grads.items()}", "gradients summed, not averaged, over batches",
      *T_CORE),
    M("apoz-not-inverted", "prune/scores.py", "        return 1.0 - mean\n", "        return mean\n",
      "APoZ keeps the units that are most often zero", *T_CORE),
    M("scope-dead-not-first", "prune/scope.py", "    s[~alive] = -math.inf\n    if protect", "    if protect",
      "already pruned weights are not kept pruned", *T_PRUNE),
    M("scope-local-off-by-one", "prune/scope.py", "n_prune = max(round(fractions[name] * n), n - int(alive.sum()))",
      "n_prune = max(int(fractions[name] * n), n - int(alive.sum()))", "local sparsity truncated, not rounded",
      *T_PRUNE),
    M("scope-no-collapse-guard", "prune/scope.py", "protect = None if allow_collapse else",
      "protect = None if True else", "global pruning may remove whole layers", *T_PRUNE),
    M("round-targets-linear", "prune/schedules.py", "return [1 - (1 - sparsity_target) ** (i / rounds) for i in range(1, rounds + 1)]",
      "return [sparsity_target * i / rounds for i in range(1, rounds + 1)]",
      "iterative rounds prune linearly, not the same share of survivors", "tests/prune/test_schedules.py"),
    # --- quantize: binary / ternary / LSQ / uniform / k-means
    M("binary-scale-2x", "quantize/binary.py", "alpha = _per_channel_mean(w.abs(), alive)",
      "alpha = 2 * _per_channel_mean(w.abs(), alive)", "binary scale 2x mean|w|", *T_BINARY),
    M("binary-scale-max", "quantize/binary.py", "alpha = _per_channel_mean(w.abs(), alive)",
      "alpha = w.abs().reshape(w.shape[0], -1).amax(1)", "binary scale max|w| instead of mean|w|", *T_BINARY),
    M("binary-zeros-not-kept", "quantize/binary.py",
      "indices = (w > 0).to(torch.int64).masked_fill(~alive, PRUNED)", "indices = (w > 0).to(torch.int64)",
      "pruned zeros become -alpha after binarization", *T_BINARY),
    M("ternary-threshold-ignored", "quantize/binary.py", "delta = self.threshold * _per_channel_mean(w.abs(), alive)",
      "delta = 0.7 * _per_channel_mean(w.abs(), alive)", "ternary threshold ignored (always 0.7)", *T_BINARY),
    M("ternary-alpha-all", "quantize/binary.py", "alpha = _per_channel_mean(w.abs(), big)",
      "alpha = _per_channel_mean(w.abs(), alive)", "ternary scale averages all weights, not those above delta",
      *T_BINARY),
    M("ste-gate-ignored", "quantize/binary.py", "return g * gate, None, None", "return g, None, None",
      "clipped STE passes gradients everywhere", *T_BINARY),
    M("lsq-gradscale-x100", "quantize/uniform.py", "1.0 / math.sqrt(per_slice * max(self.spec.qmax, 1))",
      "100.0 / math.sqrt(per_slice * max(self.spec.qmax, 1))", "LSQ gradient scale x100", *T_UNIFORM),
    M("lsq-no-gradscale", "quantize/uniform.py", "1.0 / math.sqrt(per_slice * max(self.spec.qmax, 1))", "1.0",
      "LSQ without the gradient scale", *T_UNIFORM),
    M("uniform-no-clamp", "quantize/affine.py",
      "return (torch.round(x.float() * inv) + zero_point).clamp(qmin, qmax).to(torch.int64)",
      "return (torch.round(x.float() * inv) + zero_point).to(torch.int64)", "integer codes not clamped", *T_UNIFORM),
    M("uniform-floor", "quantize/affine.py",
      "return (torch.round(x.float() * inv) + zero_point).clamp(qmin, qmax).to(torch.int64)",
      "return (torch.floor(x.float() * inv) + zero_point).clamp(qmin, qmax).to(torch.int64)",
      "truncation instead of rounding", *T_UNIFORM),
    M("uniform-dequant-sign", "quantize/affine.py", "return (q - zero_point).float() * scale.float()",
      "return (q + zero_point).float() * scale.float()", "dequantization adds the zero point", *T_UNIFORM),
    M("uniform-zero-not-in-range", "quantize/affine.py",
      "lo = torch.minimum(lo.float(), torch.zeros_like(lo, dtype=torch.float32))", "lo = lo.float()",
      "the range is not widened to hold 0", *T_UNIFORM),
    M("uniform-symmetric-halfrange", "quantize/affine.py",
      "scale = _scale_dtype((amax / ((spec.qmax - spec.qmin) / 2)).clamp_min(eps), spec)",
      "scale = _scale_dtype((amax / (spec.qmax - spec.qmin)).clamp_min(eps), spec)", "symmetric scale twice too small", *T_UNIFORM),
    M("uniform-ste-unclipped", "quantize/uniform.py", "            g = g * inside\n", "            pass\n",
      "clipped STE passes gradients outside the range", *T_UNIFORM),
    M("mse-calibration-keeps-worse", "quantize/calibration.py", "better = err < best", "better = err > best",
      "MSE calibration keeps the worse clipping", *T_UNIFORM),
    M("kmeans-no-update", "quantize/kmeans.py", "new = np.where(counts > 0, sums / np.maximum(counts, 1), old)",
      "new = old.copy()", "Lloyd update step does nothing", *T_SHARING),
    M("kmeans-midpoint-shift", "quantize/kmeans.py", "return ((c[:-1].astype(np.float64) + c[1:]) / 2).astype(np.float32)",
      "return ((c[:-1].astype(np.float64) + 3 * c[1:]) / 4).astype(np.float32)",
      "assignment boundaries not at the midpoints", *T_SHARING),
    M("kmeans-linear-init-narrow", "quantize/kmeans.py", "return np.linspace(sorted_values[0], sorted_values[-1], k)",
      "return np.linspace(sorted_values[0], sorted_values[-1], k + 2)[1:-1]",
      "linear init misses the extremes", *T_SHARING),
    M("sharing-zeros-clustered", "quantize/sharing.py", "skip_zeros=True)  # zeros get label -1 (PRUNED)",
      "skip_zeros=False)  # zeros get label -1 (PRUNED)", "pruned zeros are clustered with the rest",
      *T_SHARING),
    M("decode-pruned-not-zero", "quantize/codes.py", "return out.masked_fill(pruned, 0.0)", "return out",
      "index -1 decodes to the first centroid", *T_SHARING),
    # --- pipeline stages and the max recipe's search
    M("distill-stage-noop", "pipeline/stages.py",
      "ctx.loss_fn = DistillationLoss(teacher, hp, ctx.data.train, device=ctx.device)", "ctx.loss_fn = ctx.loss_fn",
      "the distill stage does nothing", *T_STAGES),
    M("distill-stage-alpha-ignored", "pipeline/stages.py",
      "hp = DistillHparams(temperature=self.hp.temperature, alpha=self.hp.alpha, mode=self.hp.mode)",
      "hp = DistillHparams(temperature=self.hp.temperature, mode=self.hp.mode)",
      "the distill stage ignores the recipe's alpha", *T_STAGES),
    M("lowrank-stage-noop", "pipeline/stages.py", "        self._factorize(model)\n        _retrain(",
      "        _retrain(", "the lowrank stage does nothing", *T_STAGES),
    M("prune-round-resume-skipped", "pipeline/stages.py",
      "            if round_dir is not None and (round_dir / \"done\").exists():\n"
      "                self._restore_round(model, round_dir)\n                continue\n", "",
      "finished prune rounds re-run on resume", *T_STAGES),
    M("prune-round-restore-noop", "pipeline/stages.py", "self._restore_round(model, round_dir)\n                continue",
      "continue", "a finished prune round is skipped without restoring its weights", *T_STAGES),
    M("stage-rebuild-skipped", "pipeline/compress.py", "        runner.rebuild(model, state, folder, ctx)\n", "",
      "a finished stage is restored without its structure", *T_COMPRESS),
    M("fit-bits-removed", "pipeline/stages.py", "while bits > 1 and 2 ** bits > alive:", "while False:",
      "more centroids than surviving weights", *T_COMPRESS),
    M("joint-correction-removed", "pipeline/search.py",
      "while base - _shared_accuracy(base_model, bits, hp, held) > hp.accuracy_budget:", "while False:",
      "the joint bits budget correction never runs", *T_SEARCH),
    M("joint-correction-wrong-layer", "pipeline/search.py", "worst = max(open_layers, key=lambda n: (loss[n], -bits[n]))",
      "worst = min(open_layers, key=lambda n: (loss[n], -bits[n]))",
      "the correction adds a bit where the loss alone was smallest", *T_SEARCH),
    M("sparsity-search-no-budget", "pipeline/search.py",
      "if base - evaluate(trial, held).accuracy > hp.accuracy_budget:\n                break",
      "if False:\n                break", "per-layer sparsity ignores the accuracy budget", *T_SEARCH),
    # --- pipeline: the budget-driven stages
    M("budget-keeps-first-round", "pipeline/budget.py", "            chosen = i\n",
      "            chosen = i if chosen < 0 else chosen\n", "the first round within budget is kept, not the sparsest",
      *T_BUDGET),
    M("budget-stops-on-one-round", "pipeline/stages.py", '"stop": (over and was_over) or', '"stop": over or',
      "one noisy round over budget ends the pruning path", *T_BUDGET),
    M("isotonic-no-pooling", "pipeline/budget.py", "while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:",
      "while False:", "the path's drops are not smoothed (no monotone fit)", *T_BUDGET),
    M("isotonic-ties-apart", "pipeline/budget.py", "while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:",
      "while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:",
      "rounds with equal drops do not pool their evidence", *T_BUDGET),
    M("isotonic-unweighted", "pipeline/budget.py", "weights = [1.0 / max(s, floor_se) ** 2 for s in ses]",
      "weights = [1.0 for s in ses]", "noisy rounds weigh as much as precise ones", *T_BUDGET),
    M("budget-no-standard-error", "pipeline/stages.py", '"within": drop + confidence * se <= budget + 1e-12',
      '"within": drop <= budget + 1e-12', "the budget check ignores the confidence margin", *T_BUDGET),
    M("budget-records-not-replayed", "pipeline/stages.py", "            record = _read_record(round_dir)\n",
      "            record = None\n", "finished budget rounds re-run on resume", *T_BUDGET),
    M("ecsq-search-keeps-last", "pipeline/stages.py", "        return tried[-1][\"lam\"]",
      "        return lams[-1]", "the rate search ignores its verdicts", *T_BUDGET),
    M("ecsq-rate-not-relative", "quantize/ecsq.py",
      "scaled = lam * _nonzero_variance(values[name]) if relative else lam", "scaled = lam",
      "a relative rate weight is not scaled by the tensor's variance", *T_BUDGET),
    # --- encode: coders, positions, container checks
    M("ans-leftover-removed", "encode/ans.py", 'check(clean, section, "ANS payload has leftover data")', "None",
      "the ANS leftover-data check is removed", *T_ANS),
    M("ans-histogram-sum-unchecked", "encode/ans.py",
      'check(int(counts.sum()) == count, section, f"histogram sums to {int(counts.sum())}, stream has {count} symbols")',
      "None", "the ANS histogram total is not checked against the symbol count", *T_ENCODE),
    M("ans-one-symbol-payload", "encode/ans.py",
      'check(len(payload) == 0, section, "a stream with one possible symbol has no payload")', "None",
      "a one-symbol stream may carry a payload", *T_ENCODE),
    M("huffman-kraft-unchecked", "encode/huffman.py",
      'check(kraft <= 1.0, section, "code lengths violate the Kraft inequality")', "None",
      "Huffman code lengths violating Kraft are accepted", *T_ENCODE),
    M("huffman-canonical-order", "encode/huffman.py", "order = np.lexsort((np.arange(alphabet), lengths))",
      "order = np.lexsort((-np.arange(alphabet), lengths))", "decoder's canonical order differs from the encoder's",
      *T_HUFFMAN),
    M("huffman-no-length-limit", "encode/huffman.py", "        if got.max() <= max_len:", "        if True:",
      "Huffman codes are not length-limited", *T_HUFFMAN),
    M("huffman-chunk-table-unchecked", "encode/huffman.py",
      "check(np.array_equal(pos[:-1], ends[:-1]) and last_end == int(ends[-1]), section,",
      "check(True, section,", "Huffman chunks are not checked against the chunk table", *T_HUFFMAN),
    M("positions-filler-off-by-one", "encode/positions.py", "fillers = (kept - prev - 1) >> b",
      "fillers = (kept - prev) >> b", "relative indices insert fillers one step early", *T_POSITIONS),
    M("positions-repeat-unchecked", "encode/positions.py",
      "(int(entries[-1]) < numel and bool(np.all(np.diff(entries) > 0)))", "(int(entries[-1]) < numel)",
      "repeated positions are accepted", *T_POSITIONS),
    M("gap-bits-max", "encode/positions.py", "return min((int(entries[b]) * (b + value_bits), b)",
      "return max((int(entries[b]) * (b + value_bits), b)",
      "the relative-index width maximises the cost", *T_POSITIONS),
    M("enum-rank-step", "encode/positions.py", "v = v * (c - t) // (t + 1)  # C(c, t + 1)",
      "v = v * (c - t) // (t + 2)  # C(c, t + 1)", "enum ranks use a wrong binomial after each member", *T_ENUM),
    M("enum-rank-range-unchecked", "encode/positions.py", "check(rank < math.comb(cols, k), section",
      "check(True, section", "enum ranks beyond C(cols, k) are accepted", *T_ENUM),
    M("enum-padding-unchecked", "encode/positions.py", 'check(text.count("1", sum(widths)) == 0',
      "check(True", "enum ranks with nonzero padding bits are accepted", *T_ENUM),
    M("enum-width-short", "encode/positions.py", "return [(math.comb(cols, int(k)) - 1).bit_length() for k in counts]",
      "return [max((math.comb(cols, int(k)) - 1).bit_length() - 1, 0) for k in counts]",
      "enum rank fields one bit short", *T_ENUM),
    M("section-crc-unchecked", "encode/container.py",
      'check(not verify or zlib.crc32(data) == crc, where, "checksum mismatch (corrupted)")', "None",
      "section checksums are not verified", *T_CONTAINER),
    M("manifest-crc-unchecked", "encode/container.py",
      'check(zlib.crc32(body) == mcrc, "manifest", "checksum mismatch (corrupted)")', "None",
      "the manifest checksum is not verified", *T_ENCODE),
    M("unpack-length-unchecked", "encode/bits.py",
      'check(len(data) == need, section, f"packed data has {len(data)} bytes, expected {need}")', "None",
      "packed data of the wrong length is accepted", *T_ENCODE),
    M("pack-width-off-by-one", "encode/bits.py", "    return int(max_value).bit_length()",
      "    return max(int(max_value).bit_length() - 1, 0)", "packed width one bit short", *T_HUFFMAN),
    # --- lottery (linear mode connectivity) and distillation
    M("lmc-interpolation-reversed", "lottery/lmc.py", "(1 - alpha) * a[k] + alpha * b[k]",
      "alpha * a[k] + (1 - alpha) * b[k]", "interpolation runs from b to a", *T_LMC),
    M("lmc-interpolation-half", "lottery/lmc.py", "(1 - alpha) * a[k] + alpha * b[k]",
      "(1 - alpha / 2) * a[k] + alpha / 2 * b[k]", "interpolation stops half way", *T_LMC),
    M("lmc-barrier-worst-endpoint", "lottery/lmc.py", "return max(errors) - (errors[0] + errors[-1]) / 2",
      "return max(errors) - max(errors[0], errors[-1])", "barrier measured from the worse endpoint", *T_LMC),
    M("kd-no-temperature-squared", "distill/loss.py", "return alpha * hard + (1.0 - alpha) * (t * t) * soft",
      "return alpha * hard + (1.0 - alpha) * soft", "KD soft term without the T^2 factor", *T_DISTILL),
    M("kd-alpha-swapped", "distill/loss.py", "return alpha * hard + (1.0 - alpha) * (t * t) * soft",
      "return (1.0 - alpha) * hard + alpha * (t * t) * soft", "alpha weights the teacher, not the labels",
      *T_DISTILL),
]


def _apply(src: Path, m: Mutant) -> str | None:
    """Apply ``m`` inside the copy ``src``; returns the file's original text, or None when the snippet is stale."""
    path = src / "netpress" / m.file
    text = path.read_text()
    if text.count(m.original) != 1:
        return None
    path.write_text(text.replace(m.original, m.mutated))
    return text


def _pytest(src: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """Run ``pytest -x`` on ``tests`` against the copy ``src`` in a forked child (torch is imported once, in the
    parent; netpress only in the child, from ``src``). Returns the outcome and the seconds taken."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: never returns
        try:
            os.nice(10)
            sys.dont_write_bytecode = True  # a mutant of the same size and second must not reuse a stale .pyc
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(ROOT)
            sys.path.insert(0, str(src))
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests])
        except BaseException:  # noqa: BLE001 - any crash of the child counts as a failing run
            code = 99
        os._exit(int(code))
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            return ("survived" if rc == 0 else "killed"), time.perf_counter() - start
        if time.perf_counter() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.2)


def run(mutants: list[Mutant], timeout: float) -> list[dict]:
    """Run every mutant on a fresh copy of src/; each test subset first runs unmutated (it must pass)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="netpress-mutants-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        baseline: dict[tuple[str, ...], str] = {}
        for m in mutants:
            if m.tests not in baseline:
                baseline[m.tests] = _pytest(src, m.tests, timeout)[0]
            original = _apply(src, m)
            if baseline[m.tests] != "survived":
                outcome, seconds = "broken-baseline", 0.0
            elif original is None:
                outcome, seconds = "stale", 0.0
            else:
                outcome, seconds = _pytest(src, m.tests, timeout)
            if original is not None:
                (src / "netpress" / m.file).write_text(original)
            rows.append({"id": m.id, "package": m.package, "file": m.file, "description": m.description,
                         "tests": list(m.tests), "outcome": outcome, "seconds": round(seconds, 1)})
            print(f"{outcome:>9}  {seconds:6.1f}s  {m.id}: {m.description}", flush=True)
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Killed / survived / stale counts and the score per package, and overall."""
    out = {}
    for pkg in [*PACKAGES, "all"]:
        sel = [r for r in rows if pkg == "all" or r["package"] == pkg]
        if not sel:
            continue
        killed = sum(r["outcome"] in ("killed", "timeout") for r in sel)
        survived = sum(r["outcome"] == "survived" for r in sel)
        out[pkg] = {"mutants": len(sel), "killed": killed, "survived": survived,
                    "stale": sum(r["outcome"] == "stale" for r in sel),
                    "broken_baseline": sum(r["outcome"] == "broken-baseline" for r in sel),
                    "score": killed / max(killed + survived, 1)}
    return out


def markdown(rows: list[dict], summary: dict, seconds: float) -> str:
    lines = ["# Mutation testing (targeted mutants)", "",
             f"{len(rows)} hand-written mutants of `src/netpress`, each applied to a temporary copy of `src/` and "
             f"tested by the test files covering it (`pytest -x`, timeout counts as killed). Total {seconds / 60:.1f} "
             "min on a shared, loaded 2-core machine (timings are indicative only).", "",
             "| package | mutants | killed | survived | stale | score |", "|---|---|---|---|---|---|"]
    for pkg, s in summary.items():
        lines.append(f"| {pkg} | {s['mutants']} | {s['killed']} | {s['survived']} | {s['stale']} | {s['score']:.0%} |")
    lines += ["", "| outcome | mutant | bug | tests |", "|---|---|---|---|"]
    lines += [f"| {r['outcome']} | `{r['id']}` | {r['description']} | {', '.join(r['tests'])} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated substrings of mutant ids")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per test run")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results (for spot checks)")
    args = ap.parse_args(argv)
    wanted = [s for s in args.only.split(",") if s]
    chosen = [m for m in MUTANTS if not wanted or any(w in m.id for w in wanted)]
    if args.list:
        for m in chosen:
            print(f"{m.id:32} {m.file:28} {m.description}")
        return 0
    import numpy  # noqa: F401 - heavy imports once, before the children fork
    import pytest  # noqa: F401
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = run(chosen, args.timeout)
    summary = summarize(rows)
    print({k: f"{v['killed']}/{v['killed'] + v['survived']}" for k, v in summary.items()})
    if not args.no_write and not wanted:
        sys.path.insert(0, str(ROOT / "src"))
        sys.path.insert(0, str(ROOT / "bench"))
        from common import write_result

        write_result("mutation", {"summary": summary, "mutants": rows, "seconds": round(time.perf_counter() - start)},
                     markdown(rows, summary, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
