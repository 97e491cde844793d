"""Product and residual quantization: error falls with more codewords / stages; rates follow the formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from netpress.errors import ConfigError
from netpress.quantize import kmeans_vectors, product_quantize, residual_quantize


@pytest.fixture
def w():
    torch.manual_seed(0)
    return torch.randn(128, 16)


def test_pq_error_decreases_with_more_codewords(w):
    errors = [product_quantize(w, k=k, blocks=4).error for k in (2, 8, 32, 128)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-10  # k = m: every sub-vector is its own codeword


def test_rq_error_decreases_with_more_stages(w):
    errors = [residual_quantize(w, k=16, stages=t).error for t in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_reconstruction_is_codebook_lookup_and_rates(w):
    pq = product_quantize(w, k=8, blocks=4)
    block0 = pq.codebooks[0][pq.indices[0]]
    assert torch.equal(pq.reconstruction[:, :4], block0)
    m, n, s, k = 128, 16, 4, 8
    assert pq.compression_rate == pytest.approx(m * n * 32 / (k * n * 32 + m * s * math.log2(k)))
    rq = residual_quantize(w, k=8, stages=2)
    assert torch.allclose(rq.reconstruction, rq.codebooks[0][rq.indices[0]] + rq.codebooks[1][rq.indices[1]])
    assert rq.compression_rate == pytest.approx(m * n * 32 / (2 * k * n * 32 + 2 * m * math.log2(k)))


def test_vector_kmeans_close_to_sklearn(w):
    from sklearn.cluster import KMeans

    ours, labels = kmeans_vectors(w, 8, iterations=100)
    ours_inertia = float(((w - ours[labels]) ** 2).sum())
    ref = KMeans(8, n_init=5, random_state=0).fit(w.numpy().astype(np.float64))
    assert ours_inertia <= ref.inertia_ * 1.1


def test_bad_input(w):
    with pytest.raises(ConfigError, match="divide"):
        product_quantize(w, k=4, blocks=5)
    with pytest.raises(ConfigError):
        product_quantize(w, k=200, blocks=4)
    with pytest.raises(ConfigError):
        residual_quantize(w, k=4, stages=0)
