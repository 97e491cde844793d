"""Loading a folder offline, pooling against sentence-transformers, text batches, rebuild from the stored spec."""
from __future__ import annotations

import pytest
import torch

from netpress.errors import ConfigError, DataError
from netpress.hf import (SentenceEncoder, TextInputs, compare_embeddings, embed, from_spec, load_folder, pool,
                         read_sentences, spearman)


def test_encoder_matches_sentence_transformers(tiny_folder, make_sentences):
    st = pytest.importorskip("sentence_transformers")
    encoder, tokenizer = load_folder(tiny_folder)
    assert (encoder.pooling, encoder.normalize) == ("mean", True)
    texts = make_sentences(10, seed=3)
    ours = embed(encoder, TextInputs(texts, tokenizer, batch_size=4))
    ref = st.SentenceTransformer(str(tiny_folder), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_pooling_against_brute_force():
    tokens = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(pool(tokens, mask, "mean")[0], tokens[0, :2].mean(0))
    torch.testing.assert_close(pool(tokens, mask, "max")[0], tokens[0, :2].max(0).values)
    torch.testing.assert_close(pool(tokens, mask, "cls"), tokens[:, 0])


def test_rebuild_from_spec_gives_same_architecture(tiny_folder):
    encoder, _ = load_folder(tiny_folder)
    rebuilt = from_spec(encoder.netpress_architecture)
    assert isinstance(rebuilt, SentenceEncoder)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}
    rebuilt.load_state_dict(encoder.state_dict())
    batch = dict(load_folder(tiny_folder)[1](["cat runs"], return_tensors="pt"))
    torch.testing.assert_close(rebuilt(**batch), encoder(**batch), rtol=0, atol=0)


def test_text_inputs_batches_and_truncates(tiny_folder):
    _, tokenizer = load_folder(tiny_folder)
    batches = list(TextInputs(["cat " * 50, "dog"] * 3, tokenizer, batch_size=4, max_length=8))
    assert [b["input_ids"].shape for b in batches] == [torch.Size([4, 8]), torch.Size([2, 8])]


def test_read_sentences_skips_blank_lines(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("  one  \n\n two\n\n")
    assert read_sentences(path) == ["one", "two"]
    assert read_sentences(path, limit=1) == ["one"]


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="no model folder"):
        load_folder(tmp_path / "absent")
    with pytest.raises(ConfigError, match="no config.json"):
        load_folder(tmp_path)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="no sentences"):
        read_sentences(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="no text file"):
        read_sentences(tmp_path / "absent.txt")
    with pytest.raises(ConfigError, match="does not describe"):
        from_spec({"kind": "other"})


def test_compare_embeddings_against_definitions():
    ref = torch.randn(6, 4, dtype=torch.float64)
    same = compare_embeddings(ref, ref * 3)
    assert same["cosine_min"] == pytest.approx(1.0) and same["nn_agreement"] == 1.0
    assert same["spearman"] == pytest.approx(1.0)
    flipped = compare_embeddings(ref, -ref)
    assert flipped["cosine_mean"] == pytest.approx(-1.0)
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = torch.randn(50).round(decimals=1), torch.randn(50).round(decimals=1)  # ties: average ranks
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a.numpy(), b.numpy()).statistic)
