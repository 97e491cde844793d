"""A tiny BERT sentence encoder saved as a sentence-transformers folder, built in-test (no download)."""
from __future__ import annotations

import json
import random

import pytest

transformers = pytest.importorskip("transformers")

WORDS = ("cat dog bird fish runs jumps sleeps eats red blue green small big old new the a on in under over "
         "house tree river car road city").split()


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """Tiny BertModel (2 layers, hidden 32) + BertTokenizerFast + mean pooling + Normalize, like MiniLM's folder."""
    import torch

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    vocab += [f"w{i}" for i in range(100 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64)
    transformers.BertModel(config).save_pretrained(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def make_sentences():
    """``make_sentences(n, seed)``: n random short sentences over the tiny vocabulary."""
    return sentences


@pytest.fixture
def calib_file(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(sentences(48, seed=1)) + "\n\n")
    return path
