import dataclasses

import pytest

from netpress.errors import ConfigError
from netpress.hparams import Hparams, hparams_hash
from netpress.registry import Registry
from netpress.units import Steps


@pytest.mark.parametrize("text,epochs,its", [("20ep", 20, 0), ("500it", 0, 500), ("2ep100it", 2, 100), ("0it", 0, 0)])
def test_steps_parse(text, epochs, its):
    s = Steps.parse(text)
    assert (s.epochs, s.its) == (epochs, its)
    assert Steps.parse(str(s)) == s


def test_steps_iterations():
    assert Steps.parse("2ep30it").iterations(100) == 230


@pytest.mark.parametrize("bad", ["20", "ep", "-1ep", "1.5ep", "10 epochs", ""])
def test_steps_rejects_ambiguous(bad):
    with pytest.raises(ConfigError):
        Steps.parse(bad)


def test_steps_zero_rejected_when_asked():
    with pytest.raises(ConfigError, match="longer than zero"):
        Steps.parse("0ep", allow_zero=False)


def _make(fields):
    return dataclasses.make_dataclass("Thing", fields, bases=(Hparams,), frozen=True)


def test_hash_ignores_new_field_with_default():
    old = _make([("lr", float, 0.1), ("batch", int, 32)])
    new = _make([("lr", float, 0.1), ("batch", int, 32), ("warmup", int, 0)])
    assert hparams_hash("train", old(lr=0.2)) == hparams_hash("train", new(lr=0.2))
    assert hparams_hash("train", old(lr=0.2)) != hparams_hash("train", old(lr=0.3))
    # a non-default value of the new field does change it
    assert hparams_hash("train", new(lr=0.2, warmup=5)) != hparams_hash("train", new(lr=0.2))


def test_from_dict_rejects_unknown_keys():
    cls = _make([("lr", float, 0.1)])
    with pytest.raises(ConfigError, match="unknown key"):
        cls.from_dict({"lr": 0.1, "lrr": 2})


def test_registry_lists_known_names():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(KeyError, match="known: a"):
        reg.get("b")
    with pytest.raises(ValueError):
        reg.register("a", 2)


def test_equal_lengths_hash_equal():
    from netpress.train import TrainingHparams

    a, b = TrainingHparams(steps="2ep0it", warmup="0ep"), TrainingHparams(steps="2ep")
    assert a == b and a.steps == "2ep" and hparams_hash("train", a) == hparams_hash("train", b)
