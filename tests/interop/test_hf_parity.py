"""Logit parity with transformers, both ways, for T5 v1.0 and v1.1, BART, GPT-2 and BERT.

HF models are built from tiny configs with seeded random weights (offline). On a padded batch in
float32: our model on the imported weights gives HF's outputs to 1e-5 max-abs, scanned and
unscanned; exporting those weights reproduces HF's own save_pretrained files exactly; and
transformers loads our export of weights it has never seen with every tensor in place and
matching outputs, and the export imports back to identical parameters.
"""

import copy
import functools

import jax
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from t2t.interop import (config_from_hf, config_to_hf, export_hf, from_hf_state,  # noqa: E402
                         import_hf, to_hf_state)
from t2t.interop.convert import model_differences  # noqa: E402
from t2t.interop.bart import POSITION_OFFSET as BART_POSITION_OFFSET  # noqa: E402
from t2t.interop.hf_files import read_hf_dir  # noqa: E402
from t2t.models.families import build_model  # noqa: E402
from t2t.models.flops import count_params  # noqa: E402
from t2t.models.sizes import get_size  # noqa: E402

TOLERANCE = 1e-5
VOCAB = 64
BATCH, INPUT_LENGTH, TARGET_LENGTH = 2, 7, 5
FAMILIES = ["t5_1_0", "t5_1_1", "bart", "gpt2", "bert"]
HEADS = ["bert_sequence_classification", "bert_token_classification"]
# The layer layout is independent of the heads, so the extra BERT heads run unscanned only.
WITH_LAYOUTS = [pytest.param(case, scan, id=f"{case}-{'scanned' if scan else 'unscanned'}")
                for case in FAMILIES for scan in (False, True)] + [
                pytest.param(case, False, id=f"{case}-unscanned") for case in HEADS]


def _hf_model(case: str):
    """A tiny HF model with HF's random init. head_dim is 16, so the 1/sqrt(head_dim) folded into
    GPT-2's and BERT's queries is 1/4, a power of two, and exports reproduce HF's bits."""
    t = transformers
    t5 = dict(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=48, num_heads=2, num_layers=2,
              num_decoder_layers=3, decoder_start_token_id=0, attn_implementation="eager")
    bert = dict(vocab_size=VOCAB, hidden_size=32, num_attention_heads=2, intermediate_size=48,
                num_hidden_layers=2, max_position_embeddings=16, attn_implementation="eager")
    return {
        "t5_1_0": lambda: t.T5ForConditionalGeneration(t.T5Config(**t5, feed_forward_proj="relu")),
        "t5_1_1": lambda: t.T5ForConditionalGeneration(t.T5Config(
            **t5, feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
        "bart": lambda: t.BartForConditionalGeneration(t.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=48, decoder_ffn_dim=48, encoder_layers=2, decoder_layers=3,
            max_position_embeddings=16, attn_implementation="eager")),
        "gpt2": lambda: t.GPT2LMHeadModel(t.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_head=2, n_layer=2, n_positions=16,
            attn_implementation="eager")),
        "bert": lambda: t.BertForPreTraining(t.BertConfig(**bert)),
        "bert_sequence_classification": lambda: t.BertForSequenceClassification(
            t.BertConfig(**bert, num_labels=3)),
        "bert_token_classification": lambda: t.BertForTokenClassification(
            t.BertConfig(**bert, num_labels=3)),
    }[case]().eval()


def _perturb(model) -> None:
    """Move every weight off its init, so that norms (1) and biases (0) are all distinct."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        if not model.config.tie_word_embeddings and hasattr(model, "lm_head"):
            # HF inits T5's untied lm_head with std 1; T5X's fan-in init keeps logits O(1), where
            # 1e-5 max-abs is a fair float32 bar.
            model.lm_head.weight.mul_(model.config.d_model**-0.5)
        if model.config.model_type == "bart":
            # The position rows that HF never reads (test_hf_bart_never_reads_the_first_position_
            # rows) hold what our export writes there.
            for stack in (model.model.encoder, model.model.decoder):
                stack.embed_positions.weight[:BART_POSITION_OFFSET] = 0


def _batch(case: str) -> dict[str, np.ndarray]:
    """Our features for the case's family; the second example is padded."""
    rng = np.random.default_rng(0)

    def features(prefix: str, length: int, real: tuple[int, int]) -> dict[str, np.ndarray]:
        segments = (np.arange(length) < np.array(real)[:, None]).astype(np.int32)
        return {f"{prefix}_input_tokens": rng.integers(2, VOCAB, (BATCH, length)) * segments,
                f"{prefix}_segment_ids": segments,
                f"{prefix}_positions": np.broadcast_to(np.arange(length), (BATCH, length))}

    if case.startswith("t5") or case == "bart":
        return {**features("encoder", INPUT_LENGTH, (7, 4)),
                **features("decoder", TARGET_LENGTH, (5, 3))}
    if case == "gpt2":
        return features("decoder", INPUT_LENGTH, (7, 4))
    batch = features("encoder", INPUT_LENGTH, (7, 4))
    batch["encoder_token_type_ids"] = (np.arange(INPUT_LENGTH) >= 3) * batch["encoder_segment_ids"]
    return batch


def _hf_call(model, case: str, batch: dict[str, np.ndarray]):
    t = {k: torch.tensor(np.asarray(v), dtype=torch.long) for k, v in batch.items()}
    if case.startswith("t5") or case == "bart":
        return model(input_ids=t["encoder_input_tokens"], attention_mask=t["encoder_segment_ids"],
                     decoder_input_ids=t["decoder_input_tokens"],
                     decoder_attention_mask=t["decoder_segment_ids"])
    if case == "gpt2":
        return model(input_ids=t["decoder_input_tokens"], attention_mask=t["decoder_segment_ids"])
    return model(input_ids=t["encoder_input_tokens"], attention_mask=t["encoder_segment_ids"],
                 token_type_ids=t["encoder_token_type_ids"])


def _hf_outputs(model, case: str, batch: dict[str, np.ndarray]):
    with torch.no_grad():
        return _hf_call(model, case, batch)


def _max_errors(case: str, ours: dict, hf, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Max-abs difference per output, over real (unpadded) tokens, or each example's first token
    for pooled heads. Padded positions differ by design: HF lets padding queries attend."""
    real = batch[("encoder" if case.startswith("bert") else "decoder") + "_segment_ids"] > 0
    ours = {k: np.asarray(v) for k, v in ours.items()}
    if case == "bert":
        pairs = {"mlm_logits": (ours["mlm_logits"][real], hf.prediction_logits.numpy()[real]),
                 "nsp_logits": (ours["nsp_logits"][:, 0], hf.seq_relationship_logits.numpy())}
    elif case == "bert_sequence_classification":
        pairs = {"classification_logits": (ours["classification_logits"][:, 0], hf.logits.numpy())}
    else:
        name = "token_logits" if case == "bert_token_classification" else "logits"
        pairs = {name: (ours[name][real], hf.logits.numpy()[real])}
    return {name: float(np.max(np.abs(a - b))) for name, (a, b) in pairs.items()}


@functools.cache
def _forward(config):
    """One compiled forward per config, shared by the tests (compiles dominate their time)."""
    return jax.jit(build_model(config).apply)


def _our_outputs(params, config, batch):
    return _forward(config)({"params": params}, batch)


@pytest.fixture(scope="module")
def hf_checkpoint(request, tmp_path_factory):
    """(case, HF model, its save_pretrained directory)."""
    torch.manual_seed(0)
    model = _hf_model(request.param)
    _perturb(model)
    directory = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(directory)
    return request.param, model, directory


@pytest.mark.parametrize("hf_checkpoint, scan_layers", WITH_LAYOUTS, indirect=["hf_checkpoint"])
def test_imported_weights_give_hf_outputs(hf_checkpoint, scan_layers):
    case, model, directory = hf_checkpoint
    params, config = import_hf(directory, scan_layers=scan_layers)
    assert config.scan_layers == scan_layers
    batch = _batch(case)
    errors = _max_errors(case, _our_outputs(params, config, batch),
                         _hf_outputs(model, case, batch), batch)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize("hf_checkpoint, scan_layers", WITH_LAYOUTS, indirect=["hf_checkpoint"])
def test_export_reproduces_hf_files(hf_checkpoint, scan_layers, tmp_path):
    _, _, directory = hf_checkpoint
    params, config = import_hf(directory, scan_layers=scan_layers)
    export_hf(params, config, tmp_path / "export")
    theirs, their_config = read_hf_dir(directory)
    ours, our_config = read_hf_dir(tmp_path / "export")
    assert sorted(ours) == sorted(theirs)
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    assert config_from_hf(our_config) == config_from_hf(their_config)


@pytest.mark.parametrize("hf_checkpoint", FAMILIES + HEADS, indirect=True)
def test_transformers_loads_our_export(hf_checkpoint, perturbed, tmp_path):
    # Weights HF has never seen: its own, moved by noise. (Scanned exports are covered above:
    # they reproduce HF's files bit for bit.) A local directory loads without the network.
    case, model, directory = hf_checkpoint
    hf_params, config = import_hf(directory)
    params = perturbed(hf_params, seed=1)
    export_hf(params, config, tmp_path / "export")
    loaded, info = type(model).from_pretrained(tmp_path / "export", attn_implementation="eager",
                                               output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched tensors
    batch = _batch(case)
    errors = _max_errors(case, _our_outputs(params, config, batch),
                         _hf_outputs(loaded.eval(), case, batch), batch)
    assert max(errors.values()) <= TOLERANCE, errors
    back, back_config = import_hf(tmp_path / "export")
    assert jax.tree.structure(back) == jax.tree.structure(params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)))
    assert back_config == config


@pytest.mark.parametrize("hf_checkpoint", ["t5_1_1", "bart", "gpt2", "bert"], indirect=True)
def test_either_place_for_the_attention_scale_converts_exactly(hf_checkpoint):
    # Import into a config that puts attention's 1/sqrt(head_dim) where HF does not: the links
    # fold it into the query (or out of it), and the function and HF's tensors are unchanged.
    case, model, directory = hf_checkpoint
    _, config = import_hf(directory)
    other = config.replace(runtime_attention_scale=not config.runtime_attention_scale)
    state, _ = read_hf_dir(directory)
    params = from_hf_state(state, other)
    batch = _batch(case)
    errors = _max_errors(case, _our_outputs(params, other, batch), _hf_outputs(model, case, batch),
                         batch)
    assert max(errors.values()) <= TOLERANCE, errors
    assert all(np.array_equal(v, state[k]) for k, v in to_hf_state(params, other).items())


ADAM_LR = 1e-2


@pytest.mark.parametrize("hf_checkpoint", ["bart", "gpt2", "bert"], indirect=True)
def test_an_adam_step_moves_our_model_as_it_moves_hf(hf_checkpoint):
    """The same training step, not only the same function. These models divide attention logits by
    sqrt(head_dim) at run time (`runtime_attention_scale`), as HF does; Adam's steps do not scale
    with a parameter, so folding the division into the query, as T5 does, would make the query
    learn sqrt(head_dim) times faster: that step moves the logits ~1e-1 away from HF's."""
    case, model, directory = hf_checkpoint
    hf = copy.deepcopy(model)  # the fixture's model serves other tests too
    batch = _batch(case)
    prefix = "encoder" if case == "bert" else "decoder"
    real = batch[f"{prefix}_segment_ids"] > 0
    labels = np.random.default_rng(1).integers(0, VOCAB, real.shape)
    name = "mlm_logits" if case == "bert" else "logits"

    out = _hf_call(hf, case, batch)
    logits = out.prediction_logits if case == "bert" else out.logits
    torch.nn.functional.cross_entropy(logits[torch.tensor(real)],
                                      torch.tensor(labels[real])).backward()
    torch.optim.Adam(hf.parameters(), lr=ADAM_LR).step()
    theirs = _hf_outputs(hf, case, batch)

    params, config = import_hf(directory)
    model_fn = build_model(config)

    def loss(params):
        logits = model_fn.apply({"params": params}, batch)[name]
        return optax.softmax_cross_entropy_with_integer_labels(logits[real], labels[real]).mean()

    adam = optax.adam(ADAM_LR)
    updates, _ = adam.update(jax.grad(loss)(params), adam.init(params), params)
    stepped = optax.apply_updates(params, updates)
    ours = _our_outputs(stepped, config, batch)
    assert max(_max_errors(case, ours, theirs, batch).values()) <= 1e-4
    moved = _max_errors(case, ours, _hf_outputs(model, case, batch), batch)
    assert moved[name] > 0.1  # the step did move the model


# transformers' config defaults are GPT-2 small, BERT base, T5 small and BART large; BART base
# differs from them in the fields of facebook/bart-base's config.json given here.
BART_BASE = dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                 decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 attention_dropout=0.1, activation_dropout=0.1)
HF_SIZES = [("GPT2Config", {}, "gpt2/small"), ("BertConfig", {}, "bert/base"),
            ("T5Config", {}, "t5_1_0/small"), ("BartConfig", {}, "bart/large"),
            ("BartConfig", BART_BASE, "bart/base")]


@pytest.mark.parametrize("hf_config, fields, size", HF_SIZES)
def test_hf_configs_of_published_models_are_our_sizes(hf_config, fields, size):
    ours = get_size(size)
    theirs = config_from_hf(getattr(transformers, hf_config)(**fields).to_dict())
    assert not model_differences(ours, theirs)
    assert config_from_hf(config_to_hf(ours)) == theirs


@pytest.mark.parametrize("hf_config, fields, size", HF_SIZES)
def test_published_sizes_have_hf_parameter_counts(hf_config, fields, size):
    # HF's pretraining model, built on the meta device (shapes only), its tied weights counted
    # once. BART's position tables have rows that HF never reads and we do not keep.
    config = getattr(transformers, hf_config)(**fields)
    with torch.device("meta"):
        model = transformers.AutoModelForPreTraining.from_config(config)
    theirs = sum(p.numel() for p in model.parameters())
    if hf_config == "BartConfig":
        theirs -= 2 * BART_POSITION_OFFSET * config.d_model
    assert count_params(get_size(size)) == theirs


def test_hf_bart_never_reads_the_first_position_rows():
    model = _hf_model("bart")
    batch = _batch("bart")
    before = _hf_outputs(model, "bart", batch).logits
    with torch.no_grad():
        for stack in (model.model.encoder, model.model.decoder):
            stack.embed_positions.weight[:BART_POSITION_OFFSET] += 1.0
    assert torch.equal(_hf_outputs(model, "bart", batch).logits, before)
