"""Config and tensor mappings without transformers: coverage, what exports, names, errors."""

import logging

import numpy as np
import pytest

from t2t.interop import config_from_hf, config_to_hf, from_hf_state, to_hf_state
from t2t.interop.convert import hf_family, param_shapes
from t2t.models.sizes import SIZES, get_size

TINY = dict(vocab_size=64, d_model=32, d_ff=48, num_heads=2, head_dim=16)
TINY_CONFIGS = {
    "t5_1_0": get_size("t5_1_0/tiny").replace(**TINY),
    "t5_1_1": get_size("t5_1_1/tiny").replace(**TINY, num_decoder_layers=3),
    "bart": get_size("bart/tiny").replace(**TINY, num_decoder_layers=3, max_length=16),
    "gpt2": get_size("gpt2/tiny").replace(**TINY),
    **{f"bert_{'+'.join(heads)}": get_size("bert/tiny").replace(**TINY, encoder_heads=heads)
       for heads in [("mlm", "nsp"), ("mlm",), ("sequence_classification",),
                     ("token_classification",)]},
}


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_links_cover_every_parameter_once(name):
    config = TINY_CONFIGS[name]
    links = hf_family(config).links(config)
    ours = [path for link in links for path in link.ours]
    assert sorted(ours) == sorted(param_shapes(config))  # each parameter, exactly once
    assert len({link.hf for link in links}) == len(links)


EXPORTABLE = [n for n in SIZES if n.split("/")[0] in ("t5_1_0", "t5_1_1", "bart", "gpt2", "bert")]
NOT_EXPORTABLE = [  # a config HF's model type cannot hold, and what the error names
    pytest.param(get_size(name).replace(vocab_size=256, **changes), error, id=f"{name}{changes}")
    for name, changes, error in [
        ("bart/base", {"layer_norm_epsilon": 1e-12}, r"bart cannot express.*layer_norm_epsilon="),
        ("bart/base", {"type_vocab_size": 2}, r"bart cannot express.*type_vocab_size="),
        ("transformer/base", {}, "cannot express.*scale_embeddings="),
        ("gpt1/base", {}, "cannot express.*norm_position="),
        ("t5_table2/shared", {}, "cannot express.*shared_encoder_decoder="),
        ("t5_table2/prefix_lm", {}, "cannot express.*prefix_lm="),
        ("gpt2/tiny", {"head_dim": 64}, r"cannot express.*head_dim=64 \(32\)"),
        ("gpt3/13B", {}, "5140 into 40 heads"),  # 40 x 128 = 5120
    ]]


@pytest.mark.parametrize("name", EXPORTABLE)
def test_t5_bart_gpt2_and_bert_sizes_map_to_hf_and_back(name):
    config = get_size(name)
    config = config.replace(vocab_size=config.vocab_size or 256)
    assert config_from_hf(config_to_hf(config)) == config


@pytest.mark.parametrize("config, error", NOT_EXPORTABLE)
def test_a_model_hf_cannot_express_fails_naming_the_field(config, error):
    with pytest.raises(ValueError, match=error):
        config_to_hf(config)


def test_unknown_model_type_and_missing_fields_are_named():
    with pytest.raises(ValueError, match="'llama' is not supported"):
        config_from_hf({"model_type": "llama"})
    with pytest.raises(ValueError, match="lacks 'n_embd'"):
        config_from_hf({"model_type": "gpt2", "vocab_size": 64, "n_head": 2})


RENAMES = {  # how checkpoints in the wild name tensors
    # The hub's gpt2 is saved from GPT2Model: no "transformer." prefix, plus causal-mask buffers.
    "gpt2": lambda state: {**{k.removeprefix("transformer."): v for k, v in state.items()},
                           "h.0.attn.bias": np.ones((1, 1, 16, 16), np.float32)},
    # BART saved from BartModel (no "model." prefix, no final_logits_bias), its embedding stored
    # only as the decoder's tied copy (as bart-large-cnn's is).
    "bart": lambda state: {k.removeprefix("model.").replace("shared.", "decoder.embed_tokens."): v
                           for k, v in state.items() if k != "final_logits_bias"},
    # TF-converted BERTs name LayerNorm parameters gamma and beta.
    "bert_mlm+nsp": lambda state: {k.replace("LayerNorm.weight", "LayerNorm.gamma")
                                   .replace("LayerNorm.bias", "LayerNorm.beta"): v
                                   for k, v in state.items()},
}


@pytest.mark.parametrize("name", RENAMES)
def test_checkpoints_named_the_old_way_import(name, random_params, caplog):
    config = TINY_CONFIGS[name]
    params = random_params(config)
    state = RENAMES[name](to_hf_state(params, config))
    with caplog.at_level(logging.WARNING):
        back = from_hf_state(state, config)
    assert "Ignored" not in caplog.text  # buffers are skipped silently
    np.testing.assert_equal(back, params)


def test_unused_missing_and_misshapen_tensors(random_params, caplog, monkeypatch):
    config = TINY_CONFIGS["t5_1_1"]
    state = to_hf_state(random_params(config), config)
    # A training run in this process (another test) stops the "t2t" loggers' propagation to the
    # root logger, where caplog listens.
    monkeypatch.setattr(logging.getLogger("t2t"), "propagate", True)
    with caplog.at_level(logging.WARNING):
        from_hf_state({**state, "encoder.extra.weight": np.zeros(3, np.float32)}, config)
    assert "encoder.extra.weight" in caplog.text
    missing = dict(state)
    del missing["decoder.block.2.layer.1.EncDecAttention.k.weight"]
    with pytest.raises(ValueError, match=r"lacks 1 tensor.*decoder\.block\.2\.layer\.1\."
                                         r"EncDecAttention\.k\.weight"):
        from_hf_state(missing, config)
    with pytest.raises(ValueError, match=r"wi_0\.weight has shape \(48, 32\).*\(32, 64\)"):
        from_hf_state(state, config.replace(d_ff=64))


def test_bart_position_rows_and_logits_bias_that_hf_keeps_and_we_do_not(random_params):
    config = TINY_CONFIGS["bart"]
    params = random_params(config)
    state = to_hf_state(params, config)
    for stack in ("encoder", "decoder"):  # HF's table is ours after two rows it never reads
        ours = params["embedder"][f"{stack}_positions"]["embedding"]
        theirs = state[f"model.{stack}.embed_positions.weight"]
        np.testing.assert_equal(theirs, np.concatenate([np.zeros((2, 32), np.float32), ours]))
    np.testing.assert_equal(state["final_logits_bias"], np.zeros((1, 64), np.float32))
    biased = {**state, "final_logits_bias": np.full((1, 64), 0.5, np.float32)}
    with pytest.raises(ValueError, match="final_logits_bias differs"):
        from_hf_state(biased, config)


def test_how_a_model_runs_does_not_stop_an_export():
    config = get_size("t5_1_1/base")
    running = config.replace(dtype="bfloat16", scan_layers=True, remat_policy="full",
                             attention_kernel="dot_product", kernel_gradient="inputs_first",
                             one_example_per_row=True)
    assert config_to_hf(running) == config_to_hf(config)
