"""The in-context evaluation harness: prompts, demonstrations, rank classification, `t2t eval-icl`."""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.data.vocab import EOS_ID, default_vocabulary
from t2t.decoding.predictor import Predictor
from t2t.evaluation import in_context as icl
from t2t.evaluation.in_context import Example, PromptTemplate
from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size

POOL = [Example(f"w{i}.x", f"w{i}") for i in range(10)]


def test_prompt_worked_example():
    template = PromptTemplate(description="Remove the symbols from the word.")
    demos = [Example("h.a!p/py", "happy"), Example("w:a.t;er", "water")]
    query = Example("s.u!c/c!e.s s", "success")
    assert template.prompt(demos, query) == ("Remove the symbols from the word.\n"
                                             "h.a!p/py = happy\nw:a.t;er = water\ns.u!c/c!e.s s =")
    assert PromptTemplate().prompt([], query) == "s.u!c/c!e.s s ="
    assert template.episode(demos, query) == template.prompt(demos, query) + " success"


def test_prompt_and_completion_tokenise_as_the_whole_episode():
    """The separator convention: scoring "success" after the prompt sees the pieces training saw."""
    vocab = default_vocabulary()
    template = PromptTemplate(description="Reverse the letters into a word.")
    for demos, query in [([], Example("sseccus", "success")),
                         ([Example("yppah", "happy")], Example("retaw", "water")),
                         (POOL[:3], Example("the, o;ld man", "the old man"))]:
        whole = vocab.encode(template.episode(demos, query)).tolist()
        parts = (vocab.encode(template.prompt(demos, query)).tolist()
                 + vocab.encode(query.target).tolist())
        assert whole == parts


def test_demonstrations_are_seeded_nested_over_k_and_skip_the_query():
    eight = icl.demonstrations(POOL, 8, seed=1, query_index=0, exclude=POOL[3])
    assert eight == icl.demonstrations(POOL, 8, seed=1, query_index=0, exclude=POOL[3])
    assert POOL[3] not in eight and len(set(eight)) == 8
    for k in range(9):
        assert icl.demonstrations(POOL, k, seed=1, query_index=0, exclude=POOL[3]) == eight[:k]
    others = [icl.demonstrations(POOL, 8, seed=s, query_index=q) for s, q in [(2, 0), (1, 1)]]
    assert all(o != eight for o in others)
    with pytest.raises(ValueError, match="pool has only 9"):
        icl.demonstrations(POOL, 10, seed=0, query_index=0, exclude=POOL[0])


class TablePredictor:
    """A fake model: log p(target | prompt) is a fixed random number per pair; generation returns
    the answer it is told to."""

    def __init__(self, seed: int = 0, answers: dict | None = None):
        self.rng, self.table, self.answers = np.random.default_rng(seed), {}, answers or {}
        self.score_calls = 0

    def score(self, inputs, targets):
        self.score_calls += 1
        return [self.table.setdefault((x, y), float(self.rng.normal())) for x, y in zip(inputs, targets)]

    def generate(self, inputs, **options):
        return [self.answers.get(x, "") for x in inputs]


def test_rank_classification_picks_the_most_likely_option_in_one_call():
    predictor = TablePredictor()
    prompts = [f"prompt {i} =" for i in range(20)]
    options = [[f"option {j}" for j in range(2 + i % 3)] for i in range(20)]  # 2 to 4 options
    chosen = icl.rank_classify(predictor, prompts, options)
    assert predictor.score_calls == 1
    for prompt, opts, c in zip(prompts, options, chosen):
        assert c == max(range(len(opts)), key=lambda j: predictor.table[prompt, opts[j]])


def test_evaluate_in_context_scores_both_ways():
    template = PromptTemplate(description="Drop the x.")
    queries = [Example(f"q{i}.x", f"q{i}", (f"q{i}", "other", "third")) for i in range(12)]
    # The fake model generates the right answer for half the 2-shot prompts and knows nothing else.
    prompts = [template.prompt(icl.demonstrations(POOL, 2, 0, i, q), q) for i, q in enumerate(queries)]
    predictor = TablePredictor(answers={p: f" {q.target} " for p, q in zip(prompts[:6], queries)})
    results = icl.evaluate_in_context(predictor, queries, POOL, template, shots=2, seed=0)
    assert results["exact_match"] == 50.0 and results["num_examples"] == 12
    expected = np.mean([max(q.options, key=lambda o: predictor.table[p, o]) == q.target
                        for p, q in zip(prompts, queries)])
    assert results["rank_accuracy"] == pytest.approx(100 * expected)
    assert set(icl.evaluate_in_context(predictor, queries, POOL, template, 2, mode="rank")) == {
        "rank_accuracy", "num_examples"}
    assert icl.exact_match(["success", "a b.", "a b.", "word"],
                           ["success = when", "a  b. c", "a b", "words"]) == 50.0
    with pytest.raises(ValueError, match="target 'b' is not among its options"):
        Example("a", "b", ("c", "d"))


@pytest.fixture(scope="module")
def tiny_predictor():
    """A random 1-layer GPT-2 with the embedded vocabulary, continuing prompts as a plain LM."""
    vocab = default_vocabulary()
    config = get_size("gpt2/tiny").replace(vocab_size=vocab.padded_vocab_size, d_model=16,
                                           num_heads=2, head_dim=8, d_ff=32, num_decoder_layers=1,
                                           dropout_rate=0.0, max_length=128)
    model = build_model(config)
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), dummy_batch(config)))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: jnp.asarray(0.5 * rng.normal(size=x.shape), x.dtype), shapes)
    return Predictor(config, params, vocab, inputs_end_with_eos=False, max_length=4, batch_size=8)


def reference_log_likelihood(predictor: Predictor, prompt: str, target: str) -> float:
    """log p(target + EOS | prompt), from one causal forward pass over BOS, prompt, target (padded
    at the end to a fixed width, which a causal model's earlier positions cannot see)."""
    prompt_ids = predictor.vocabulary.encode(prompt).tolist()
    target_ids = predictor.vocabulary.encode(target).tolist() + [EOS_ID]
    sequence = np.zeros((1, 64), np.int32)
    sequence[0, :len(prompt_ids) + len(target_ids)] = prompt_ids + target_ids
    features = {"decoder_input_tokens": np.pad(sequence, ((0, 0), (1, 0)))[:, :-1],
                "decoder_segment_ids": np.ones_like(sequence),
                "decoder_positions": np.arange(64)[None]}
    log_probs = np.asarray(_log_probs(predictor.model, predictor.params, features))[0]
    return float(sum(log_probs[len(prompt_ids) + i, t] for i, t in enumerate(target_ids)))


@functools.partial(jax.jit, static_argnums=0)
def _log_probs(model, params, features):
    return jax.nn.log_softmax(model.apply({"params": params}, features)["logits"].astype(jnp.float32))


def test_a_real_model_ranks_by_its_own_likelihood(tiny_predictor):
    template = PromptTemplate(description="Repeat the word.")
    demos = [Example("garden", "garden"), Example("river", "river")]
    prompts = [template.prompt(demos[:k], Example("state", "state")) for k in (0, 2)]
    options = [["state", "union", "the people"]] * 2
    chosen = icl.rank_classify(tiny_predictor, prompts, options)
    for prompt, opts, c in zip(prompts, options, chosen):
        reference = [reference_log_likelihood(tiny_predictor, prompt, o) for o in opts]
        scored = tiny_predictor.score([prompt] * len(opts), opts)
        np.testing.assert_allclose(scored, reference, rtol=1e-4, atol=1e-4)
        assert c == int(np.argmax(reference))


def test_eval_icl_appends_one_line_per_cell(tiny_predictor, tmp_path, monkeypatch, capsys):
    tiny_predictor.step = 7
    monkeypatch.setattr(Predictor, "from_run_dir", lambda *a, **kw: tiny_predictor)
    argv = ["--run_dir", str(tmp_path), "--task", "copy", "--shots", "0,2", "--num_examples", "4",
            "--mode", "rank"]
    assert icl.main(argv) == 0
    lines = [json.loads(line) for line in (tmp_path / "eval_metrics.jsonl").read_text().splitlines()]
    assert [(line["split"], line["shots"], line["described"]) for line in lines] == [
        ("eval:icl/copy/0shot/bare", 0, 0), ("eval:icl/copy/2shot/bare", 2, 0),
        ("eval:icl/copy/0shot/described", 0, 1), ("eval:icl/copy/2shot/described", 2, 1)]
    task = icl.load_task("copy", 4)
    direct = icl.evaluate_in_context(tiny_predictor, task.queries, task.pool,
                                     PromptTemplate(task.description), 2, 0, "rank")
    assert lines[3] == {"step": 7, "split": "eval:icl/copy/2shot/described", "shots": 2,
                        "described": 1, **direct}
    assert icl.main(argv[:2] + ["--task", "no_such_task"]) == 2
    assert "no_such_task" in capsys.readouterr().err
