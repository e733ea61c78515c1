"""Frozen contextual features + a small classifier: ELMo's feature-based protocol, for ELMo and BERT.

    text ─► frozen model ─► every layer's hidden states ─► mean over the real tokens ─► [L, D] per text
                            (ELMo: token layer + 2 biLSTM layers; BERT: embeddings + each block)
         [L, D] ─► standardise ─► ScalarMix (softmax weights x gamma, learned) ─► MLP ─► label

The same protocol serves both models, so a comparison between them is fair: one text per row
(truncated to `length` tokens), the same pooling, the same classifier, its training budget and its
model selection (the step with the best validation accuracy). Because mean pooling and ScalarMix are
both linear, mixing the pooled layers equals pooling the mixed layers, so the (expensive) frozen
model runs once per text and only the classifier trains.

BERT's layers come from flax's `capture_intermediates` (the Embedder's and every TransformerBlock's
output), without touching the model code. Each text is read as pretraining saw it: ELMo's as the
pieces + EOS (`lm`), BERT's as [CLS] pieces [SEP].

`main` is `t2t features`:

    t2t features --run_dir runs/elmo_tiny --task wiki_topic --out results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from t2t.data.objectives.vocab_info import VocabInfo
from t2t.data.vocab import Vocabulary
from t2t.decoding.run_dir import TrainedRun
from t2t.evaluation.tasks import get_task
from t2t.models.elmo import Elmo, ScalarMix, character_table
from t2t.models.families import Embedder, build_model
from t2t.models.transformer import TransformerBlock
from t2t.training.elmo import RUN_FILE, load_elmo

log = logging.getLogger("t2t")

# texts -> [n, num_layers, width]: every layer's hidden states, mean-pooled over each text's tokens.
LayerFeatures = Callable[[Sequence[str]], np.ndarray]


def rows(vocab: Vocabulary, texts: Sequence[str], length: int, prefix: Sequence[int] = (),
         suffix: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One text per row: prefix ⧺ pieces (cut to fit) ⧺ suffix, then padding.

    -> tokens [n, length] and segment_ids [n, length] (1 on the text's tokens, 0 on padding).
    Example, length 6, suffix [EOS = 1]: "a b c d e f" -> [a, b, c, d, e, 1], segment [1] * 6.
    """
    room = length - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"length={length} leaves no room for text after {len(prefix)} prefix and "
                         f"{len(suffix)} suffix tokens.")
    tokens = np.zeros((len(texts), length), np.int32)
    segment_ids = np.zeros((len(texts), length), np.int32)
    for i, ids in enumerate(vocab.encode_batch(list(texts))):
        row = [*prefix, *ids[:room], *suffix]
        tokens[i, : len(row)] = row
        segment_ids[i, : len(row)] = 1
    return tokens, segment_ids


def mean_pool(layers: jax.Array, segment_ids: jax.Array) -> jax.Array:
    """[L, b, l, d] layers, [b, l] segment ids -> [b, L, d]: each layer's mean over real tokens."""
    mask = (segment_ids > 0).astype(jnp.float32)
    total = jnp.einsum("Lbld,bl->bLd", layers.astype(jnp.float32), mask)
    return total / jnp.maximum(mask.sum(-1), 1.0)[:, None, None]


def _in_batches(fn: Callable[..., jax.Array], arrays: Sequence[np.ndarray], batch_size: int
                ) -> np.ndarray:
    """fn over fixed-size batches (the last one padded, so one compiled shape serves all)."""
    n = len(arrays[0])
    out = []
    for start in range(0, n, batch_size):
        chunk = [a[start:start + batch_size] for a in arrays]
        pad = batch_size - len(chunk[0])
        chunk = [np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in chunk]
        out.append(np.asarray(fn(*chunk))[: batch_size - pad])
    return np.concatenate(out)


def elmo_features(run_dir: str | Path, length: int = 128, batch_size: int = 64) -> LayerFeatures:
    """A `t2t train-elmo` run's layer features: [n, num_layers + 1, 2 d_model] per text."""
    config, vocab, params = load_elmo(run_dir)
    model, table = Elmo(config), character_table(vocab, config.vocab_size, config.max_characters)
    pooled = jax.jit(lambda chars, segments: mean_pool(
        model.apply({"params": params}, chars, segments, method=Elmo.layers), segments))

    def features(texts: Sequence[str]) -> np.ndarray:
        tokens, segments = rows(vocab, texts, length, suffix=[vocab.eos_id])
        return _in_batches(pooled, [table[tokens], segments], batch_size)

    return features


def _is_layer_output(module: nn.Module, method: str) -> bool:
    """capture_intermediates filter: the embedder's output and every transformer block's."""
    return method == "__call__" and isinstance(module, (Embedder, TransformerBlock))


def bert_features(run_dir: str | Path, length: int = 128, batch_size: int = 64) -> LayerFeatures:
    """An encoder-only `t2t train` run's layer features: [n, num_layers + 1, d_model] per text."""
    run = TrainedRun.load(run_dir)
    if run.config.family != "encoder_only" or run.config.scan_layers:
        raise ValueError(f"{run_dir} holds a {run.config.family} model"
                         f"{' with scan_layers' if run.config.scan_layers else ''}; bert_features "
                         f"reads encoder-only models whose layers are separate modules "
                         f"(scan_layers=False), as gin_configs/experiments/bert_tiny_mlm_nsp.gin "
                         f"trains them.")
    params, _ = run.load_params()
    model = build_model(run.config.replace(encoder_heads=()))  # layers only: no MLM logits
    info = VocabInfo.from_vocabulary(run.vocabulary)

    def pooled(tokens: jax.Array, segments: jax.Array) -> jax.Array:
        batch = {"encoder_input_tokens": tokens, "encoder_segment_ids": segments,
                 "encoder_positions": jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape),
                 "encoder_token_type_ids": jnp.zeros_like(tokens)}
        _, state = model.apply({"params": params}, batch, capture_intermediates=_is_layer_output,
                               mutable=["intermediates"])
        captured = state["intermediates"]
        layers = [captured["embedder"]["__call__"][0]] + [
            captured["encoder"][f"layers_{i}"]["__call__"][0]
            for i in range(run.config.num_encoder_layers)]
        return mean_pool(jnp.stack(layers), segments)

    pooled = jax.jit(pooled)

    def features(texts: Sequence[str]) -> np.ndarray:
        tokens, segments = rows(run.vocabulary, texts, length, prefix=[info.cls_id],
                                suffix=[info.sep_id])
        return _in_batches(pooled, [tokens, segments], batch_size)

    return features


def layer_features(run_dir: str | Path, length: int = 128, batch_size: int = 64) -> LayerFeatures:
    """ELMo or BERT features, whichever kind of run `run_dir` holds."""
    make = elmo_features if (Path(run_dir) / RUN_FILE).is_file() else bert_features
    return make(run_dir, length, batch_size)


class MixClassifier(nn.Module):
    """[b, L, D] standardised pooled layers -> ScalarMix -> Dense(hidden) -> relu -> [b, labels]."""

    num_layers: int
    num_labels: int
    hidden: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mixed = ScalarMix(self.num_layers, name="mix")(jnp.swapaxes(x, 0, 1))  # [b, D]
        return nn.Dense(self.num_labels)(nn.relu(nn.Dense(self.hidden)(mixed)))


def train_classifier(train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray],
                     num_labels: int, steps: int = 400, learning_rate: float = 3e-3,
                     weight_decay: float = 1e-2, hidden: int = 128, eval_every: int = 20,
                     seed: int = 0) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """Full-batch AdamW on (features [n, L, D], labels [n]); keeps the step with the best
    validation accuracy. Features are standardised per (layer, dimension) with the training
    set's statistics, so layers of different scales (BERT's raw embeddings) mix on equal terms.

    -> (predict: features -> labels, {"valid_accuracy", "best_step", "mix_weights", "gamma"}).
    """
    x, y = train
    mean, std = x.mean(0), x.std(0) + 1e-6
    norm = lambda f: jnp.asarray((f - mean) / std, jnp.float32)
    model = MixClassifier(x.shape[1], num_labels, hidden)
    params = model.init(jax.random.key(seed), norm(x[:1]))["params"]
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    @jax.jit
    def step(params, opt_state, x, y):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": p}, x), y).mean()
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    predict_with = jax.jit(lambda p, x: jnp.argmax(model.apply({"params": p}, x), -1))
    x_train, y_train, x_valid = norm(x), jnp.asarray(y), norm(valid[0])
    opt_state, best = tx.init(params), (-1.0, 0, params)
    for i in range(1, steps + 1):
        params, opt_state = step(params, opt_state, x_train, y_train)
        if i % eval_every == 0:
            accuracy = float(np.mean(np.asarray(predict_with(params, x_valid)) == valid[1]))
            if accuracy > best[0]:
                best = (accuracy, i, params)
    accuracy, best_step, params = best
    mix = params["mix"]
    info = {"valid_accuracy": accuracy, "best_step": best_step,
            "mix_weights": np.asarray(jax.nn.softmax(mix["scalars"])).tolist(),
            "gamma": float(mix["gamma"])}
    return lambda f: np.asarray(predict_with(params, norm(f))), info


def evaluate_features(features: LayerFeatures, task_name: str = "wiki_topic",
                      data_dir: str | None = None, max_train: int | None = None,
                      **classifier: Any) -> dict[str, Any]:
    """Train the classifier on the task's train split, select on validation, score test accuracy."""
    task = get_task(task_name)
    if not task.label_names:
        raise ValueError(f"task {task_name!r} is not a classification task (no label names).")
    label = {name: i for i, name in enumerate(task.label_names)}
    splits = {}
    for split in ("train", "validation", "test"):
        examples = task.examples(split, max_train if split == "train" else None, data_dir)
        splits[split] = (features([e["inputs"] for e in examples]),
                         np.array([label[e["targets"]] for e in examples]))
        log.info("%s %s: %d examples, features %s", task_name, split, len(examples),
                 splits[split][0].shape[1:])
    predict, info = train_classifier(splits["train"], splits["validation"], len(label),
                                     **classifier)
    test_x, test_y = splits["test"]
    return {"task": task_name, "test_accuracy": float(np.mean(predict(test_x) == test_y)),
            "majority_baseline": float(np.mean(test_y == np.bincount(splits["train"][1]).argmax())),
            "train_examples": len(splits["train"][1]), "test_examples": len(test_y), **info}


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t features`: a run's frozen features + ScalarMix classifier on a classification task."""
    parser = argparse.ArgumentParser(prog="t2t features", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a `t2t train-elmo` or encoder-only "
                                                         "`t2t train` run directory")
    parser.add_argument("--task", default="wiki_topic")
    parser.add_argument("--data_dir", default=None, help="the offline suite (default: its cache)")
    parser.add_argument("--length", type=int, default=128, help="tokens per text")
    parser.add_argument("--max_train", type=int, default=None)
    parser.add_argument("--steps", type=int, default=400, help="classifier steps (full batch)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if not log.handlers:  # progress lines of this module only, not every library's INFO
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        results = evaluate_features(layer_features(args.run_dir, args.length), args.task,
                                    args.data_dir, args.max_train, steps=args.steps)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t features: {error}", file=sys.stderr)
        return 2
    results["run_dir"] = str(args.run_dir)
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
