"""Lean BERT-like encoder layers (netpress.runtime.encoder) compute what the Hugging Face layers compute, on the
decoded (dense) model and on the runtime-converted (int8) model, at batch 1 and on a padded batch; anything the
lean path does not cover runs the original forward."""
from __future__ import annotations

import copy

import pytest
import torch

from netpress.runtime import Plan, RuntimeHparams, convert
from netpress.runtime import encoder as lean_module
from netpress.runtime.encoder import LeanEncoderLayer, is_bert_layer, make_lean

transformers = pytest.importorskip("transformers")

LENGTHS = [9, 4, 7]  # a padded batch: real tokens per row, padded to 9
DENSE_TOL = dict(rtol=1e-5, atol=1e-5)  # same fp32 math, other op order
INT8_TOL = 0.05  # runtime vs decoded: dynamic 8-bit activations, as a fraction of max |hidden state|
SAME_KERNELS_TOL = 1e-3  # lean vs original forward on the same int8 kernels (only an activation rounding flip
#                          could differ; here they agree exactly), as a fraction of max |hidden state|


def _bert(attn: str = "sdpa", **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, attn_implementation=attn, **extra)
    model = transformers.BertModel(config).eval()
    with torch.no_grad():  # weights on one int8 grid per tensor, as the pretrained-balanced recipe stores them
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                step = float(m.weight.abs().max()) / 127
                m.weight.copy_(torch.round(m.weight / step) * step)
    return model


def _inputs(batch: int) -> dict:
    g = torch.Generator().manual_seed(batch)
    lengths = [LENGTHS[0]] if batch == 1 else LENGTHS
    ids = torch.randint(5, 100, (len(lengths), max(lengths)), generator=g)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def _hidden(model, x) -> torch.Tensor:
    with torch.inference_mode():
        return model(**x).last_hidden_state


@pytest.fixture
def lean_calls(monkeypatch) -> list:
    """Counts calls of the lean path (so a test can tell it ran, not the fallback)."""
    calls = []
    real = lean_module.lean_forward

    def spy(*a):
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(lean_module, "lean_forward", spy)
    return calls


def _real(h: torch.Tensor, x: dict) -> torch.Tensor:
    return h[x["attention_mask"].bool()]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])  # bool mask / additive float mask (or None at batch 1)
@pytest.mark.parametrize("batch", [1, 3])
def test_lean_layers_match_the_hf_layers_on_the_decoded_model(attn, batch, lean_calls):
    model = _bert(attn)
    lean = copy.deepcopy(model)
    assert make_lean(lean) == ["encoder.layer.0", "encoder.layer.1"]
    x = _inputs(batch)
    ref, got = _hidden(model, x), _hidden(lean, x)
    assert len(lean_calls) == 2
    torch.testing.assert_close(_real(got, x), _real(ref, x), **DENSE_TOL)
    torch.testing.assert_close(got, ref, **DENSE_TOL)  # padded positions too: the same function everywhere


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_lean_runtime_model_matches_the_decoded_model(batch, fuse, lean_calls):
    model = _bert()
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    hp = RuntimeHparams(kinds=("int8",), measure=False, skip_padding=False)  # padding: test_skip_padding_*
    slow = convert(model, names, hp=hp.replace(lean=False))
    fast = convert(model, names, hp=hp)
    if fuse:
        _fuse_qkv(slow)
        _fuse_qkv(fast)
    assert fast.runtime_plan.lean_layers == ["encoder.layer.0", "encoder.layer.1"]
    x = _inputs(batch)
    ref, base, got = _hidden(model, x), _hidden(slow, x), _hidden(fast, x)
    assert len(lean_calls) == 2
    scale = float(ref.abs().max())
    assert (_real(base, x) - _real(ref, x)).abs().max() <= INT8_TOL * scale
    assert (_real(got, x) - _real(ref, x)).abs().max() <= INT8_TOL * scale
    assert (got - base).abs().max() <= SAME_KERNELS_TOL * scale  # every position, padding too


def _fuse_qkv(model) -> None:
    from netpress.runtime.fusion import fuse

    for layer in model.encoder.layer:
        sa = layer.attention.self
        dense = [torch.nn.Linear(m.in_features, m.out_features) for m in (sa.query, sa.key, sa.value)]
        for d, m in zip(dense, (sa.query, sa.key, sa.value)):  # back to a Linear from the int8 kernel's weight
            w, b = m._packed.unpack()
            d.weight.data, d.bias.data = w.dequantize(), b
        sa.query, sa.key, sa.value = fuse(dense)


def test_plan_keeps_the_lean_layers():
    model = _bert()
    fast = convert(model, [], hp=RuntimeHparams(measure=False))
    plan = Plan.from_dict(fast.runtime_plan.to_dict())
    assert plan.lean_layers == ["encoder.layer.0", "encoder.layer.1"]
    assert Plan.from_dict({"machine": "m", "layers": []}).lean_layers == []  # plans saved before lean layers


def test_lean_layers_keep_class_names_and_hf_outputs():
    model = _bert()
    lean = copy.deepcopy(model)
    make_lean(lean)
    layer = lean.encoder.layer[0]
    assert isinstance(layer, transformers.models.bert.modeling_bert.BertLayer) and isinstance(layer, LeanEncoderLayer)
    assert list(lean.state_dict()) == list(model.state_dict())
    x = _inputs(3)
    with torch.inference_mode():
        ref = model(**x, output_hidden_states=True).hidden_states
        got = lean(**x, output_hidden_states=True).hidden_states
    assert len(got) == len(ref) == 3
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, **DENSE_TOL)


def test_fallbacks_run_the_original_forward(lean_calls):
    model = _bert("eager")
    lean = copy.deepcopy(model)
    make_lean(lean)
    x = _inputs(3)
    lean.train()  # dropout active: the original forward (any output is fine, nothing lean)
    with torch.no_grad():
        lean(**x)
    lean.eval()
    with torch.inference_mode():
        ref = model(**x, output_attentions=True).attentions
        got = lean(**x, output_attentions=True).attentions  # HF's hooks on attention.self: original forward
    assert len(got) == 2 and all(a is not None for a in got)
    torch.testing.assert_close(got[0], ref[0], **DENSE_TOL)
    assert lean_calls == []


def test_hooks_on_a_skipped_submodule_keep_the_original_forward(lean_calls):
    lean = _bert()
    make_lean(lean)
    seen = []
    lean.encoder.layer[1].intermediate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    x = _inputs(3)
    _hidden(lean, x)
    _hidden(lean, x)
    assert len(seen) == 2 and len(lean_calls) == 2  # layer 0 lean, layer 1 original (its hook ran)


def test_only_plain_encoder_layers_are_recognised():
    decoder = _bert(is_decoder=True, add_cross_attention=True)
    assert not any(is_bert_layer(m) for m in decoder.modules())
    assert make_lean(decoder) == []
    assert not is_bert_layer(torch.nn.Linear(4, 4))
    assert is_bert_layer(_bert().encoder.layer[0])


@pytest.mark.parametrize("fused_seconds, fused", [(2.0, True), (3.5, False)])
def test_lean_query_key_value_fuse_when_timed_faster(fused_seconds, fused, lean_calls):
    model = _bert()
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    table = {"dense": 9.0, "int8": 1.0, "fused": fused_seconds}  # fused vs 3 x 1.0 apart

    def timer(modules, x):
        return {k: table.get(k, 0.0) for k in modules}

    x = _inputs(3)
    fast = convert(model, names, example_inputs=[x], hp=RuntimeHparams(kinds=("int8",), repeats=2, skip_padding=False),
                   timer=timer)
    groups = {layer.group for layer in fast.runtime_plan.layers if layer.group}
    qkv = {",".join(f"encoder.layer.{i}.attention.self.{p}" for p in ("query", "key", "value")) for i in (0, 1)}
    assert groups == (qkv if fused else set())
    assert (lean_module._fused_group(fast.encoder.layer[0].attention.self) is not None) == fused
    slow = convert(model, names, plan=fast.runtime_plan, hp=RuntimeHparams(lean=False))  # same kernels and groups
    got, base = _hidden(fast, x), _hidden(slow, x)
    assert len(lean_calls) == 2
    assert (got - base).abs().max() <= SAME_KERNELS_TOL * float(base.abs().max())


def test_skip_padding_keeps_real_tokens_and_passes_padding_through(lean_calls):
    model = _bert()
    lean = copy.deepcopy(model)
    make_lean(lean, skip_padding=True)
    x = _inputs(3)
    ref, got = _hidden(model, x), _hidden(lean, x)
    assert len(lean_calls) == 2
    torch.testing.assert_close(_real(got, x), _real(ref, x), **DENSE_TOL)
    with torch.inference_mode():
        embedded = model.embeddings(input_ids=x["input_ids"])
    pad = ~x["attention_mask"].bool()
    torch.testing.assert_close(got[pad], embedded[pad])  # padded positions: the layers' input, untouched
    assert not torch.allclose(got[pad], ref[pad])


def test_skip_padding_on_the_runtime_model_stays_within_int8_tolerance():
    model = _bert()
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    hp = RuntimeHparams(kinds=("int8",), measure=False)
    skip, full = convert(model, names, hp=hp), convert(model, names, hp=hp.replace(skip_padding=False))
    x = _inputs(3)
    ref, got, every = _hidden(model, x), _hidden(skip, x), _hidden(full, x)
    scale = float(ref.abs().max())
    assert (_real(got, x) - _real(ref, x)).abs().max() <= INT8_TOL * scale
    assert (_real(got, x) - _real(every, x)).abs().max() <= INT8_TOL * scale


def test_padding_rows_only_for_pure_key_padding_masks():
    from netpress.runtime.encoder import padding_rows

    keys = torch.tensor([[True, True, False], [True, True, True]])
    rows = padding_rows(keys[:, None, None].expand(2, 1, 3, 3), 2, 3)
    assert rows.real.tolist() == [0, 1, 3, 4, 5] and rows.padded.tolist() == [2]
    x = torch.arange(6.0)
    assert torch.cat([x[rows.real], x[rows.padded]])[rows.order].tolist() == x.tolist()
    assert padding_rows(torch.ones(2, 1, 3, 3, dtype=torch.bool), 2, 3) is None  # nothing padded
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None, None].expand(2, 1, 3, 3)
    assert padding_rows(causal, 2, 3) is None  # rows differ per query
    empty = keys.clone()
    empty[0] = False
    assert padding_rows(empty[:, None, None].expand(2, 1, 3, 3), 2, 3) is None  # a sequence with no token
    assert padding_rows(torch.zeros(2, 1, 3, 3), 2, 3) is None  # float masks: not read
    assert padding_rows(None, 2, 3) is None


def test_hooks_on_runtime_kernels_inside_lean_layers_still_run(lean_calls):
    model = _bert()
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    fast = convert(model, names, hp=RuntimeHparams(kinds=("int8",), measure=False))
    seen = []
    fast.encoder.layer[0].output.dense.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    _hidden(fast, _inputs(1))
    assert len(lean_calls) == 2 and seen[-1] == torch.Size([9, 128])  # (the first call also ran the original)


def test_what_is_derived_from_a_mask_is_reused_only_for_that_mask_unchanged():
    from netpress.runtime.encoder import padding_rows

    mask = torch.tensor([[True, True, False]])[:, None, None].expand(1, 1, 3, 3).clone()
    first = padding_rows(mask, 1, 3)
    assert padding_rows(mask, 1, 3) is first  # every layer of one forward: computed once
    mask[0, 0, :, 2] = True  # changed in place: derived again
    assert padding_rows(mask, 1, 3) is None
    other = torch.tensor([[True, False, False]])[:, None, None].expand(1, 1, 3, 3)
    assert padding_rows(other, 1, 3).real.tolist() == [0]
