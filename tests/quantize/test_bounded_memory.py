"""Bounded-memory paths (chunked k-means labels, narrow-index decode, chunked checks) equal the one-shot ones."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from netpress.errors import ConfigError
from netpress.quantize import base, codes, kmeans
from netpress.quantize.codes import decode_indices, index_dtype
from netpress.quantize.kmeans import assign_1d, kmeans_1d
from netpress.quantize.sharing import kmeans_codebook


def _values(n=20_011, seed=0):
    return np.random.default_rng(seed).standard_t(3, size=n).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 16, 300])
def test_assign_1d_chunked_equals_one_chunk(monkeypatch, k):
    x = _values()
    centroids = np.sort(np.random.default_rng(1).choice(x, k, replace=False))
    whole = assign_1d(x, centroids)
    monkeypatch.setattr(kmeans, "ASSIGN_CHUNK", 97)
    assert np.array_equal(assign_1d(x, centroids), whole)
    assert np.array_equal(assign_1d(x, centroids, dtype=np.int16), whole)
    assert assign_1d(x, centroids, dtype=np.int16).dtype == np.int16


def test_kmeans_labels_dtype_and_chunks_do_not_change_the_result(monkeypatch):
    x = _values()
    ref = kmeans_1d(x, 16, max_iter=50)
    monkeypatch.setattr(kmeans, "ASSIGN_CHUNK", 1000)
    small = kmeans_1d(x, 16, max_iter=50, labels_dtype=torch.int8)
    assert small.labels.dtype == torch.int8 and torch.equal(small.labels.long(), ref.labels)
    assert torch.equal(small.centroids, ref.centroids) and small.iterations == ref.iterations
    direct = float(((torch.from_numpy(x).double() - ref.centroids.double()[ref.labels]) ** 2).sum())
    assert small.inertia == pytest.approx(direct, rel=1e-9)


def test_assign_1d_temporaries_are_bounded_by_the_chunk(monkeypatch):
    x = _values(400_000)
    centroids = np.linspace(x.min(), x.max(), 16).astype(np.float32)
    monkeypatch.setattr(kmeans, "ASSIGN_CHUNK", 1 << 14)
    tracemalloc.start()
    try:
        labels = assign_1d(x, centroids, dtype=np.int8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # output (1 byte a value) + the 2**16-bucket table (~2.2 MB) + chunk temporaries; unchunked: ~9 MB more
    assert peak < labels.nbytes + 3_500_000
    assert np.array_equal(labels, assign_1d(x, centroids))


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_kmeans_codebook_compact_indices_decode_like_int64(monkeypatch, bits):
    w = torch.from_numpy(_values(6000)).reshape(60, 100)
    w[::7, ::3] = 0.0
    q = kmeans_codebook(w, bits)
    assert q.indices.dtype == index_dtype(bits) and int(q.indices.min()) == -1
    wide = decode_indices(q.indices.long(), q.codebook.detach())
    monkeypatch.setattr(codes, "DECODE_CHUNK", 333)
    with torch.no_grad():
        assert torch.equal(q(w), wide) and torch.equal(q.codes().decode(), wide)
    assert torch.equal(q(w), wide)  # autograd path (trainable codebook)


def test_kmeans_codebook_unpruned_equals_pruned_path():
    w = torch.from_numpy(_values(5000))
    dense = kmeans_codebook(w, 4)
    w2 = torch.cat([w, torch.zeros(3)])
    sparse = kmeans_codebook(w2, 4)
    assert torch.equal(dense.indices, sparse.indices[:-3]) and torch.equal(dense.codebook, sparse.codebook)


def test_codebook_weight_rejects_indices_wider_than_bits():
    from netpress.quantize.codebook import CodebookWeight

    with pytest.raises(ValueError):
        CodebookWeight(torch.tensor([0, 4]), torch.zeros(4), bits=2)


def test_check_finite_chunked_counts_every_bad_value(monkeypatch):
    monkeypatch.setattr(base, "CHECK_CHUNK", 7)
    w = torch.zeros(10, 10)
    w[0, 0], w[5, 5], w[9, 9] = float("nan"), float("inf"), float("-inf")
    with pytest.raises(ConfigError, match="3 NaN/Inf"):
        base.check_finite("w", w)
    base.check_finite("ok", torch.ones(10, 10))
    base.check_finite("empty", torch.zeros(0))


@pytest.mark.parametrize("spec", [
    dict(bits=8, symmetric=False, granularity="channel", calibration="mse"),
    dict(bits=4, symmetric=True, granularity="channel", axis=1, calibration="mse"),
    dict(bits=3, symmetric=False, granularity="tensor", calibration="mse"),
    dict(bits=5, symmetric=False, granularity="group", axis=1, group_size=16, calibration="mse"),
])
def test_uniform_calibration_and_codes_chunked_equal_one_block(monkeypatch, spec):
    from netpress.quantize import calibration, uniform
    from netpress.quantize.uniform import UniformSpec, calibrate, expand, quantize, uniform_codes

    spec = UniformSpec(**spec)
    w = torch.from_numpy(_values(37 * 64)).reshape(37, 64)
    w[3, :5] = 0.0
    scale, zp = calibrate(w, spec)
    ref = uniform_codes(w, scale, zp, spec)
    q = quantize(w, expand(scale, w, spec), expand(zp, w, spec), spec.qmin, spec.qmax)
    assert torch.equal(ref.indices.long(), (q - spec.qmin).masked_fill(w == 0, -1))
    assert ref.indices.dtype == index_dtype(spec.bits)
    monkeypatch.setattr(calibration, "MSE_CHUNK", 100)
    monkeypatch.setattr(uniform, "CODES_CHUNK", 100)
    s2, z2 = calibrate(w, spec)
    assert torch.equal(s2, scale) and torch.equal(z2, zp)
    got = uniform_codes(w, s2, z2, spec)
    assert torch.equal(got.indices, ref.indices) and torch.equal(got.decode(), ref.decode())


def test_decode_affine_never_changes_int32_indices():
    """16-bit codes are int32, the decode's own width: it must add the offset into a copy, not the indices."""
    from torch import nn

    from netpress.quantize.uniform import UniformSpec, quantize_weights

    torch.manual_seed(0)
    lin = quantize_weights(nn.Linear(3, 2), UniformSpec(bits=16, symmetric=False, granularity="channel"),
                           names=["weight"])
    q = lin.parametrizations.weight[0]
    before = q.indices.clone()
    first = lin.weight.clone()
    assert torch.equal(q.indices, before) and int(before.min()) >= 0 and torch.equal(lin.weight, first)
    assert torch.equal(q.codes().decode(), first)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
@pytest.mark.parametrize("chunk", [1 << 20, 333])
def test_narrow_index_gather_gradient_equals_int64_indexing(monkeypatch, chunk, dtype):
    """Centroid fine-tuning through narrow indices gets exactly the gradient int64 indexing gives (same order)."""
    monkeypatch.setattr(codes, "DECODE_CHUNK", chunk)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(-1, 16, (40, 250), generator=g, dtype=dtype)
    book = torch.randn(16, generator=g, requires_grad=True)
    upstream = torch.randn(40, 250, generator=g)
    grads = []
    for ind in (idx, idx.long()):
        out = decode_indices(ind, book)
        out.backward(upstream)
        grads.append((out.detach(), book.grad.clone()))
        book.grad = None
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("positive", [False, True])  # True: the zeros widen the range the bucket table spans
@pytest.mark.parametrize("chunk", [1 << 20, 64])
def test_kmeans_skip_zeros_equals_clustering_the_survivors(monkeypatch, chunk, positive):
    monkeypatch.setattr(kmeans, "ASSIGN_CHUNK", chunk)
    x = np.abs(_values(5000)) + 3.0 if positive else _values(5000)
    x[[0, 17, 2500, 4999]] = 0.0
    x[[40, 41]] = -0.0
    alive = x != 0
    ref = kmeans_1d(x[alive], 8, max_iter=100)
    got = kmeans_1d(x.copy(), 8, max_iter=100, labels_dtype=torch.int8, skip_zeros=True)
    assert torch.equal(got.centroids, ref.centroids) and got.iterations == ref.iterations
    assert got.inertia == ref.inertia
    want = torch.full((5000,), -1, dtype=torch.int64)
    want[torch.from_numpy(alive)] = ref.labels
    assert torch.equal(got.labels.long(), want)
    with pytest.raises(ConfigError):
        kmeans_1d(np.array([0.0, 0.0, 1.0], np.float32), 2, skip_zeros=True)


def test_kmeans_1d_skip_zeros_needs_one_sorted_copy_and_the_labels(monkeypatch):
    x = _values(1_000_000)
    x[::1000] = 0.0
    monkeypatch.setattr(kmeans, "ASSIGN_CHUNK", 1 << 14)
    tracemalloc.start()
    try:
        result = kmeans_1d(x, 16, max_iter=5, labels_dtype=torch.int8, skip_zeros=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # sorted float32 copy (4 B a value) + int8 labels + prefix sums + the 2**16-bucket table; no float64 copies
    assert peak < 5 * x.size + 3_500_000
    assert int((result.labels == -1).sum()) == 1000


@pytest.mark.parametrize("axis,group", [(None, 0), (0, 0), (1, 0), (1, 8), (0, 5)])
def test_decode_affine_in_row_blocks_equals_one_block(monkeypatch, axis, group):
    from netpress.quantize.codes import decode_affine, slice_count

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(-1, 16, (45, 16), generator=g, dtype=torch.int8)
    n = slice_count((45, 16), axis, group)
    scale, zp = torch.rand(n, generator=g) + 0.01, torch.randint(0, 16, (n,), generator=g)
    whole = decode_affine(idx, scale, zp, -8, axis, group)
    monkeypatch.setattr(codes, "DECODE_CHUNK", 40)
    got = decode_affine(idx, scale, zp, -8, axis, group)
    assert torch.equal(got, whole) and got.is_contiguous() and torch.equal(idx, idx.clone())
    assert bool((got[idx < 0] == 0).all())


def test_inverse_cholesky_damping_in_one_copy_equals_adding_a_scaled_identity():
    from netpress.obs import inverse_cholesky

    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 64, generator=g)
    h = 2 * x.T @ x / 500
    h[3, 7] = h[7, 3] = -0.0
    eye = torch.eye(64)
    chol = torch.linalg.cholesky(h + 0.01 * h.diagonal().mean() * eye)
    linv = torch.linalg.solve_triangular(chol, eye, upper=False)
    assert torch.equal(inverse_cholesky(h, 0.01), torch.linalg.cholesky(linv.T @ linv, upper=True))
