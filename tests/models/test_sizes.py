"""Named sizes have exactly the published parameter counts (T5_REFERENCE §9.1, §9.2)."""

import pytest

from t2t.models.config import model_config
from t2t.models.flops import count_params
from t2t.models.sizes import SIZES, get_size

# T5 v1.0: keras-hub presets / computed; v1.1: keras-hub for base/xl/xxl, computed for small/large
# with the untied LM head included.
PUBLISHED = {
    "t5_1_0/small": 60_506_624,
    "t5_1_0/base": 222_903_552,
    "t5_1_0/large": 737_668_096,
    "t5_1_0/3B": 2_851_598_336,
    "t5_1_0/11B": 11_307_321_344,
    "t5_1_1/small": 76_961_152,
    "t5_1_1/base": 247_577_856,
    "t5_1_1/large": 783_150_080,
    "t5_1_1/xl": 2_849_757_184,
    "t5_1_1/xxl": 11_135_332_352,
    # GPT-2 (nanoGPT's exact counts for the released checkpoints; T5_REFERENCE §9.4).
    "gpt2/small": 124_439_808,
    "gpt2/medium": 354_823_168,
    "gpt2/large": 774_030_080,
    "gpt2/xl": 1_557_611_200,
    # BERT with its MLM and NSP heads (HF BertForPreTraining: bert-base-uncased has 110,106,428).
    "bert/base": 110_106_428,
    # T5 Table 2 at BERT-base size (T5_REFERENCE §3: 222.9M / 138.0M / 123.8M / 109.6M).
    "t5_table2/encoder_decoder": 222_903_552,
    "t5_table2/shared": 137_949_312,
    "t5_table2/encoder_decoder_half": 123_790_080,
    "t5_table2/language_model": 109_628_544,
    "t5_table2/prefix_lm": 109_628_544,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_equals_published(name):
    assert count_params(get_size(name)) == PUBLISHED[name]


def _formula(cfg):
    """T5_REFERENCE §9.2's closed form."""
    d, v, inner = cfg.d_model, cfg.vocab_size, cfg.num_heads * cfg.head_dim
    attn = 4 * d * inner
    ffn = (len(cfg.mlp_activations) + 1) * d * cfg.d_ff
    enc_layer, dec_layer = attn + ffn + 2 * d, 2 * attn + ffn + 3 * d
    head = 0 if cfg.logits_via_embedding else v * d
    return (v * d + cfg.num_encoder_layers * enc_layer + cfg.num_decoder_layers * dec_layer
            + 2 * d + 2 * cfg.relative_attention_num_buckets * cfg.num_heads + head)


@pytest.mark.parametrize("name", ["t5_1_0/tiny", "t5_1_1/tiny"])
def test_tiny_sizes_follow_the_formula(name):
    cfg = get_size(name).replace(vocab_size=8192)
    assert count_params(cfg) == _formula(cfg)


def test_bert_backbone_is_110m_and_large_340m():
    """BERT §3: base L=12, H=768, A=12, 110M; large L=24, H=1024, A=16, 340M (without the
    pretraining heads: embeddings + encoder + pooler, 109.5M and 335.1M)."""
    import jax
    import numpy as np

    from t2t.models.families import build_model, dummy_batch

    for name, expected in (("bert/base", 109_482_240), ("bert/large", 335_141_888)):
        cfg = get_size(name)
        shapes = jax.eval_shape(build_model(cfg).init, jax.random.key(0), dummy_batch(cfg))
        params = shapes["params"]
        backbone = sum(int(np.prod(x.shape)) for k in ("embedder", "encoder", "pooler")
                       for x in jax.tree.leaves(params[k]))
        assert backbone == expected


def test_versions_differ_as_published():
    v10, v11 = get_size("t5_1_0/base"), get_size("t5_1_1/base")
    assert v10.mlp_activations == ("relu",) and v10.logits_via_embedding and v10.dropout_rate == 0.1
    assert (v11.mlp_activations == ("gelu", "linear") and not v11.logits_via_embedding
            and v11.dropout_rate == 0.0)


def test_unknown_size_and_field_suggest_the_closest():
    with pytest.raises(ValueError, match="Did you mean 't5_1_1/base'"):
        get_size("t5_1_1/bsae")
    with pytest.raises(ValueError, match="Did you mean 'dropout_rate'"):
        model_config("t5_1_1/tiny", droput_rate=0.1)
    assert set(SIZES) >= set(PUBLISHED)
