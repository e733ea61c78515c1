"""Text in, text (or scores) out: a trained model behind `generate`, `score` and `classify`.

    predictor = Predictor.from_run_dir("runs/t5_tiny")
    predictor.generate(["The <extra_id_0> of the Union"], method="beam", beam_size=4)
    predictor.score(["Is the sky blue?"], ["yes"])                    # log p(target | input)
    predictor.classify(["Is the sky blue?"], [["yes", "no"]])         # rank classification: [0]

Texts are tokenised with the run's vocabulary, inputs with EOS appended as in training (unless the
run trained a plain LM, whose prompts are continued instead), and processed in batches of
`batch_size` rows padded to a power-of-two width, so a handful of shapes cover any input and each
compiles once.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from t2t.data.vocab import EOS_ID, PAD_ID, Vocabulary
from t2t.decoding.adapter import make_decoder
from t2t.decoding.beam_search import beam_search
from t2t.decoding.greedy import greedy
from t2t.decoding.run_dir import TrainedRun
from t2t.decoding.sampling import sample
from t2t.decoding.scoring import log_likelihood, rank_classify
from t2t.models.config import TransformerConfig
from t2t.models.families import build_model

METHODS = ("greedy", "beam", "sample")
_MIN_WIDTH = 8


def _width(lengths: Sequence[int]) -> int:
    """The padded width of a batch: the longest row, rounded up to a power of two."""
    return max(_MIN_WIDTH, 1 << math.ceil(math.log2(max(max(lengths, default=1), 1))))


def _pad(rows: Sequence[np.ndarray], num_rows: int) -> np.ndarray:
    """Rows of ids -> [num_rows, width] int32, right-padded with PAD (missing rows all PAD)."""
    out = np.full((num_rows, _width([len(r) for r in rows])), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


class Predictor:
    """A model, its parameters and vocabulary, for batched generation and scoring of texts."""

    def __init__(self, config: TransformerConfig, params: Any, vocabulary: Vocabulary, *,
                 inputs_end_with_eos: bool = True, max_length: int = 64, batch_size: int = 16,
                 step: int | None = None, max_input_length: int | None = None):
        """
        Args:
          config, params: the model.
          vocabulary: tokenises inputs and targets, and detokenises outputs.
          inputs_end_with_eos: append EOS to inputs (T5's tasks do); False continues a prompt.
          max_length: default number of output tokens (EOS included) that `generate` allows.
          max_input_length: inputs longer than this many tokens (EOS included) are truncated,
            keeping the EOS, as training truncated them (T5's feature lengths); None keeps all.
          batch_size: rows per compiled batch.
          step: the checkpoint step the parameters come from, if any (evaluation logs it).
        """
        self.config, self.params, self.vocabulary = config, params, vocabulary
        self.model = build_model(config)
        self.inputs_end_with_eos = inputs_end_with_eos
        self.max_length = max_length
        self.batch_size = batch_size
        self.step = step
        self.max_input_length = max_input_length
        self._compiled: dict[tuple, Callable] = {}

    @classmethod
    def from_run_dir(cls, run_dir: str, step: int | None = None,
                     batch_size: int = 16) -> "Predictor":
        """The model of a `t2t train` run directory at checkpoint `step` (default: the latest);
        outputs default to the run's target length."""
        run = TrainedRun.load(run_dir)
        params, step = run.load_params(step)
        return cls(run.config, params, run.vocabulary, inputs_end_with_eos=run.inputs_end_with_eos,
                   max_length=run.feature_lengths["targets"], batch_size=batch_size, step=step,
                   max_input_length=run.feature_lengths.get("inputs"))

    def _encode(self, texts: Sequence[str], eos: bool, limit: int | None = None
                ) -> list[np.ndarray]:
        """Token ids of each text (+ EOS), at most `limit` of them: a long prompt keeps its start
        and, with `eos`, ends with EOS, as the trainer's examples do."""
        rows = []
        for row in self.vocabulary.encode_batch(list(texts)):
            if limit is not None:
                row = row[:limit - 1 if eos else limit]
            rows.append(np.append(row, EOS_ID) if eos else row)
        return rows

    def _encode_inputs(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._encode(texts, self.inputs_end_with_eos, self.max_input_length)

    def _batches(self, *columns: list[np.ndarray]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(first row, [one padded [batch_size, width] array per column]) for each batch."""
        for start in range(0, len(columns[0]), self.batch_size):
            yield start, [_pad(c[start:start + self.batch_size], self.batch_size) for c in columns]

    def _compile(self, key: tuple, fn: Callable) -> Callable:
        if key not in self._compiled:
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key]

    def generate_with_scores(self, texts: Sequence[str], method: str = "greedy",
                             max_length: int | None = None, beam_size: int = 4,
                             alpha: float = 0.6, temperature: float = 1.0, top_k: int = 0,
                             top_p: float = 1.0, seed: int = 0) -> list[tuple[str, float]]:
        """(output text, score) per input text. The score is the output's log-likelihood for
        greedy decoding and sampling, and its length-penalised log-likelihood for beam search.

        Args:
          method: "greedy", "beam" (`beam_size`, `alpha`) or "sample" (`temperature`, `top_k`,
            `top_p`, `seed`).
          max_length: most output tokens, EOS included; default the run's target length.
        """
        if method not in METHODS:
            raise ValueError(f"Unknown decoding method {method!r}; choose from {METHODS}.")
        max_length = max_length or self.max_length
        options = {"beam": dict(beam_size=beam_size, alpha=alpha),
                   "sample": dict(temperature=temperature, top_k=top_k, top_p=top_p),
                   "greedy": {}}[method]
        model = self.model

        def run(params, inputs, rng):
            decoder = make_decoder(model, params, max_length)
            if method == "beam":
                beams = beam_search(decoder, inputs, max_length, **options)
                return beams.tokens[:, 0], beams.scores[:, 0]
            out = (sample(decoder, inputs, max_length, rng, **options) if method == "sample"
                   else greedy(decoder, inputs, max_length))
            return out.tokens, out.log_likelihood

        decode = self._compile(("generate", method, max_length, *options.items()), run)
        rng = jax.random.key(seed)
        results = []
        for start, (inputs,) in self._batches(self._encode_inputs(texts)):
            tokens, scores = jax.device_get(
                decode(self.params, inputs, jax.random.fold_in(rng, start)))
            rows = min(self.batch_size, len(texts) - start)
            results += [(self.vocabulary.decode(tokens[i]), float(scores[i])) for i in range(rows)]
        return results

    def generate(self, texts: Sequence[str], **options) -> list[str]:
        """The output text for each input text; options as in `generate_with_scores`."""
        return [text for text, _ in self.generate_with_scores(texts, **options)]

    def score(self, inputs: Sequence[str], targets: Sequence[str]) -> list[float]:
        """log p(target | input) of each pair, EOS of the target included (as T5X scores)."""
        if len(inputs) != len(targets):
            raise ValueError(f"score needs one target per input; got {len(inputs)} inputs and "
                             f"{len(targets)} targets.")
        model = self.model
        scorer = self._compile(("score",), lambda params, x, y: log_likelihood(model, params, x, y))
        scores: list[float] = []
        for start, (x, y) in self._batches(self._encode_inputs(inputs),
                                           self._encode(targets, True)):
            rows = min(self.batch_size, len(inputs) - start)
            scores += [float(s) for s in jax.device_get(scorer(self.params, x, y))[:rows]]
        return scores

    def classify(self, inputs: Sequence[str], options: Sequence[Sequence[str]]) -> list[int]:
        """Rank classification: for each input, the index of its most likely option.

        E.g. `classify(["Is the sky blue?"], [["yes", "no"]])` scores both answers and returns [0]
        if "yes" is the likelier.
        """
        return rank_classify(self, inputs, options)
