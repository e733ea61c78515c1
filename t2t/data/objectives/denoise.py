"""T5's text-to-text objectives: ``Denoise`` (mask + inputs_fn + targets_fn), span corruption, prefix LM,
LM, and the named objectives of the T5 paper's Tables 2-7 with the t5 library's gin names.

Following ``t5.data.preprocessors.denoise``, a denoising objective is three interchangeable pieces,
a noise mask (``masks.py``) and functions building the inputs and the targets from tokens + mask
(``transforms.py``). Named objectives (T5_REFERENCE §5.1), ``<pattern>_<density%>_<inputs>_<targets>``:

    pattern: iid (i.i.d. mask), span_<mean> (random spans), regular (periodic spans)
    inputs:  u unique sentinel per noise span, m one sentinel per noise token, d drop noise tokens,
             r random token per noise token, r<a>s<b> random token a% / sentinel b% (T5's "BERT-style")
    targets: u unique sentinel per non-noise span, d drop non-noise tokens, f the full original segment

plus ``all_permute`` (deshuffling), ``prefix_lm``, ``lm`` and ``span_corruption`` (= span_3_15_u_u).
Each is a gin configurable: ``train.objective = @iid_15_u_u()``, overrides ``iid_15_u_u.noise_density``.

Table 3 examples on "Thank you for inviting me to your party last week ." (EOS appended to both sides):

    iid_15_u_u   mask "for inviting", "last"
                 inputs  Thank you <X> me to your party <Y> week .        targets <X> for inviting <Y> last <Z>
    iid_15_d_d   inputs  Thank you me to your party week .                targets for inviting last
    iid_15_m_f   inputs  Thank you <M> <M> me to your party <M> week .   targets (the original)
    iid_15_r10s90_f      Thank you <M> <M> me to your party apple week . targets (the original)
    all_permute  inputs  party me for your to . last you inviting week Thank   targets (the original)
    span_3_15_u_u        Thank you <X> to <Y> week .                      <X> for inviting me <Y> your party last
    prefix_lm    k = 4   Thank you for inviting                          me to your party last week .
    lm           inputs  (empty, no EOS)                                  targets (the original)

(With the library's spans the mask ends with noise, so span-corruption targets end on noise and need
no final sentinel; T5_REFERENCE §8.6.)

Lengths for 512 inputs (EOS included). "needed": the smallest targets length that holds 99% of full
segments (``raw_length`` refuses less; the rare longer rows are re-drawn); "suggested":
``feature_lengths(512)``, 99.9% rounded up to 8 where lengths vary (exact otherwise):

    objective          raw tokens  targets needed  suggested  T5 gin targets
    iid_15_u_u             511          177           192        192
    iid_15_d_d             511           97           104        104  ("99.9th percentile")
    iid_15_m_f             511          512           512        default
    iid_15_r10s90_f        511          512           512        default
    all_permute            511          512           512        default
    iid_10_u_u             511          128           144        103  (T5 trims ~30% of rows)
    iid_25_u_u             511          261           280        256
    iid_50_u_u             511          413           424        512
    span_2_15_u_u          552          126           126        126
    span_3_15_u_u          568          114           114        114  (= span_corruption)
    span_5_15_u_u          581          105           105        105
    span_10_15_u_u         591           99            99         99
    prefix_lm              511          511           512        default (inputs <= 511)
    lm                     511 = targets 512 - 1, inputs 0

The exact figures are computed by ``length_table()`` (a test pins them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import gin
import numpy as np

from t2t.data.objectives.base import Objective, by_length_groups, gin_fix
from t2t.data.objectives.masks import (NoiseMaskFn, iid_noise_mask, random_prefix_noise_mask,
                                       random_spans_noise_mask, regular_noise_mask, span_counts)
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.transforms import (InputsTargetsFn, drop_noise_tokens, drop_nonnoise_tokens,
                                            noise_span_to_unique_sentinel, noise_token_to_random_token,
                                            noise_token_to_random_token_or_sentinel, noise_token_to_sentinel,
                                            nonnoise_span_to_unique_sentinel, permute_noise_tokens)
from t2t.data.objectives.vocab_info import VocabInfo


def random_spans_helper(
    inputs_length: int,
    noise_density: float,
    mean_noise_span_length: float,
    extra_tokens_per_span_inputs: int = 1,
    extra_tokens_per_span_targets: int = 1,
) -> tuple[int, int]:
    """Raw segment length and targets length so that span corruption fills ``inputs_length`` exactly.

    For T raw tokens: noise = round(T * density), spans = round(noise / mean_span), and (EOS included)
    inputs = (T - noise) + spans * extra_in + 1 and targets = noise + spans * extra_tgt + 1. T is the
    largest length whose inputs still fit in ``inputs_length``. Rounding is Python's (half to even), as
    in the T5 library.

    >>> random_spans_helper(512, 0.15, 3.0)   # noise 85, spans 28: 483 + 28 + 1 = 512, 85 + 28 + 1 = 114
    (568, 114)
    >>> random_spans_helper(64, 0.2, 2.0), random_spans_helper(64, 0.2, 1.0)
    ((70, 22), (63, 27))

    Returns:
      (tokens_length, targets_length): raw tokens per segment and the targets length they produce.
    """

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return (
            tokens_length - num_noise + num_spans * extra_tokens_per_span_inputs + 1,
            num_noise + num_spans * extra_tokens_per_span_targets + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    # T5 quirk kept for parity: at density 0.5 keep targets no longer than inputs.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


# --------------------------------------------------------------------------------------------------
# Denoise
# --------------------------------------------------------------------------------------------------


@gin.configurable
class Denoise(Objective):
    """A denoising objective: a noise mask, then inputs and targets built from tokens + mask.

    ``targets_fn=None`` makes the targets the whole original segment (BERT/MASS-style). Segments of
    different lengths (the final, shorter piece of a stream) are masked in separate vectorised calls,
    one per distinct length; draws happen in order of first appearance of each length (mask, then
    inputs_fn, then targets_fn). Segments are ``inputs_length - 1`` raw tokens (T5's
    ``split_tokens_to_inputs_length``), leaving room for EOS.

    Example (``Denoise(iid_noise_mask, noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel,
    0.15)`` = ``iid_15_u_u``, the T5 baseline), Table 3 sentence, mask on "for inviting" and "last":

        tokens  = Thank you for inviting me to your party last week .
        inputs  = Thank you <extra_id_0> me to your party <extra_id_1> week . EOS
        targets = <extra_id_0> for inviting <extra_id_1> last <extra_id_2> EOS

    Its output lengths are random; with ``feature_lengths`` at call time the rare rows that overflow are
    re-drawn (see ``base.py``), and ``raw_length`` refuses lengths that would overflow too often.
    """

    def __init__(
        self,
        noise_mask_fn: NoiseMaskFn = random_spans_noise_mask,
        inputs_fn: InputsTargetsFn = noise_span_to_unique_sentinel,
        targets_fn: InputsTargetsFn | None = nonnoise_span_to_unique_sentinel,
        noise_density: float = 0.15,
        name: str = "denoise",
    ):
        self.noise_mask_fn = noise_mask_fn
        self.inputs_fn = inputs_fn
        self.targets_fn = targets_fn
        self.uses_sentinels = any("sentinel" in _function_name(fn)
                                  for fn in (inputs_fn, targets_fn) if fn is not None)
        self.noise_density = noise_density
        self.name = name

    def describe(self) -> str:
        return f" (noise_density={self.noise_density})"

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        def group(tokens: np.ndarray) -> Examples:
            mask = self.noise_mask_fn(tokens.shape[1], self.noise_density, rng=rng, num_examples=tokens.shape[0])
            inputs = self.inputs_fn(tokens, mask, vocab.vocab_size, rng)
            targets = Ragged.from_dense(tokens) if self.targets_fn is None \
                else self.targets_fn(tokens, mask, vocab.vocab_size, rng)
            return {"inputs": inputs.append(vocab.eos_id), "targets": targets.append(vocab.eos_id)}

        return by_length_groups(segments, group)

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """``inputs_length - 1`` raw tokens; raises if the lengths would not hold the examples.

        >>> iid_15_u_u().raw_length({'inputs': 512, 'targets': 192})
        511
        """
        inputs_length = int(feature_lengths["inputs"])
        if inputs_length < 2:
            raise ValueError(f"{self.name} needs inputs >= 2, got {inputs_length}. "
                             f"Set {gin_fix(self.feature_lengths(512))}")
        raw = inputs_length - 1
        self.check_lengths(raw, feature_lengths, self.feature_lengths(inputs_length))
        return raw

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """{'inputs': inputs_length, 'targets': the suggested (99.9th percentile) targets length}.

        >>> iid_15_u_u().feature_lengths(512)
        {'inputs': 512, 'targets': 192}
        """
        suggested = self.suggested_lengths(inputs_length - 1)
        return {"inputs": max(inputs_length, suggested["inputs"]), "targets": suggested["targets"]}


@gin.configurable("span_corruption")
class SpanCorruption(Denoise):
    """T5's final pre-training objective (``preprocessors.span_corruption``), gin name ``span_corruption``.

    Segments of ``random_spans_helper(inputs_length)[0]`` raw tokens (568 for 512 inputs at 15% / 3)
    get a random-spans mask; each noise span becomes a unique sentinel in the inputs, each non-noise
    span a unique sentinel in the targets, and EOS ends both. A full segment always yields exactly
    512 inputs / 114 targets (no padding): 483 kept + 28 sentinels + EOS, and 85 noise + 28 + EOS.

    Worked example (vocab 32100, 40 raw tokens 100..139, density 0.15 -> 6 noise tokens in 2 spans,
    non-noise parts [10, 24], noise parts [2, 4]):

        mask    = positions 10-11 and 36-39
        inputs  = [100, ..., 109, 32099, 112, ..., 135, 32098, 1]
        targets = [32099, 110, 111, 32098, 136, 137, 138, 139, 1]

    Table 3 ("random spans"), spans "for inviting me" and "your party last" of the 11-token sentence:
    inputs "Thank you <X> to <Y> week . EOS", targets "<X> for inviting me <Y> your party last <Z> EOS".
    The paper's trailing <Z> appears only when the segment ends with non-noise; the library's masks
    always end with noise, so its targets end "... last EOS" (T5_REFERENCE §8.6).

    Because the mask starts with non-noise and ends with noise, input sentinel k and target sentinel k
    always mark the same span, inputs end with [sentinel, EOS] and targets end with [noise token, EOS].
    """

    def __init__(self, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                 name: str = "span_corruption"):
        super().__init__(
            noise_mask_fn=functools.partial(random_spans_noise_mask, mean_noise_span_length=mean_noise_span_length),
            inputs_fn=noise_span_to_unique_sentinel,
            targets_fn=nonnoise_span_to_unique_sentinel,
            noise_density=noise_density,
            name=name,
        )
        self.mean_noise_span_length = mean_noise_span_length

    def describe(self) -> str:
        return f" (noise_density={self.noise_density}, mean_noise_span_length={self.mean_noise_span_length})"

    def output_lengths(self, raw_length) -> tuple[np.ndarray, np.ndarray]:
        """Exact (inputs, targets) lengths, EOS included, for segments of ``raw_length`` tokens.

        Exact because the noise and span counts depend only on the length (an upper bound for a
        1-token segment, which is masked as 2 tokens then cut). Works elementwise on arrays.
        """
        if self.noise_density == 0.0:  # all-False mask: the inputs are the segment, the targets one sentinel
            return np.asarray(raw_length) + 1, np.full_like(raw_length, 2)
        length, num_noise, num_spans = span_counts(raw_length, self.noise_density, self.mean_noise_span_length)
        return length - num_noise + num_spans + 1, num_noise + num_spans + 1

    def _fit(self, inputs_length: int) -> tuple[int, int]:
        """(raw tokens per segment, targets length every segment up to that length needs)."""
        tokens_length, _ = random_spans_helper(inputs_length, self.noise_density, self.mean_noise_span_length)
        # The stream's last segment is shorter, so every length up to a full segment must fit.
        inputs, targets = (np.maximum.accumulate(x) for x in self.output_lengths(np.arange(1, tokens_length + 1)))
        tokens_length = int(np.searchsorted(inputs, inputs_length, side="right"))
        if tokens_length == 0:
            raise ValueError(f"inputs={inputs_length} is too short for {self.name}.")
        return tokens_length, int(targets[tokens_length - 1])

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """Raw tokens per segment; raises if the targets length would not hold every example.

        This is ``random_spans_helper(inputs_length)[0]`` (568 for 512 / 0.15 / 3), checked against the
        exact lengths the mask produces. The two can differ where the T5 library would silently trim:
        the helper rounds in float64 and lets the span count be 0, the mask rounds in float32 and uses at
        least one span. E.g. inputs 191, density 0.15, span 1: the helper says targets 57, but a
        190-token segment gets round(28.500002) = 29 noise tokens, so 59 targets. Here the segment is
        shortened until the inputs fit, and too-short targets are an error, never a truncation.

        >>> SpanCorruption().raw_length({'inputs': 512, 'targets': 114})
        568
        """
        inputs_length, targets_length = int(feature_lengths["inputs"]), int(feature_lengths["targets"])
        tokens_length, needed_targets = self._fit(inputs_length)
        if needed_targets > targets_length:
            raise ValueError(
                f"TASK_FEATURE_LENGTHS['targets']={targets_length} is too short for {self.name}{self.describe()}: "
                f"with inputs={inputs_length} it needs targets >= {needed_targets}. Set "
                f"{gin_fix({'inputs': inputs_length, 'targets': needed_targets})}")
        return tokens_length

    def needed_lengths(self, raw_length: int) -> dict[str, int]:
        inputs, targets = self.output_lengths(np.arange(1, raw_length + 1))
        return {"inputs": int(inputs.max()), "targets": int(targets.max())}

    suggested_lengths = needed_lengths  # exact: every full segment has the same lengths

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """{'inputs': inputs_length, 'targets': exact}; ``SpanCorruption().feature_lengths(512)`` is 512 / 114."""
        return {"inputs": inputs_length, "targets": self._fit(inputs_length)[1]}


def _function_name(fn) -> str:
    return getattr(fn, "func", fn).__name__  # through functools.partial


@gin.configurable("prefix_lm")
class PrefixLM(Denoise):
    """T5's prefix LM objective (``prefix_lm.gin``): split each segment at a random point.

    A random-prefix mask (density 0.5: prefix length k uniform in [1, L - 1]); the inputs keep the noise
    (the prefix, ``drop_nonnoise_tokens``), the targets the rest (``drop_noise_tokens``). Segments are
    ``inputs_length - 1`` raw tokens and documents are joined as for the other objectives.

    Table 3 example, L = 11, k = 4:

        tokens  = Thank you for inviting me to your party last week .
        inputs  = Thank you for inviting EOS
        targets = me to your party last week . EOS

    So inputs + targets (without EOS) is the segment. Lengths: inputs <= L, targets <= L (k >= 1), so
    512 inputs need targets >= 511 (suggested 512).
    """

    def __init__(self, noise_density: float = 0.5, name: str = "prefix_lm"):
        super().__init__(random_prefix_noise_mask, drop_nonnoise_tokens, drop_noise_tokens, noise_density, name)

    def needed_lengths(self, raw_length: int) -> dict[str, int]:
        """Exact maxima over all split points (a uniform split must not be re-drawn)."""
        max_input = raw_length - 1
        min_input = min(max_input, max(1, int(np.rint((1 - 2 * self.noise_density) * max_input))))
        return {"inputs": max_input + 1, "targets": raw_length - min_input + 1}

    def suggested_lengths(self, raw_length: int) -> dict[str, int]:
        return {k: -(-v // 8) * 8 for k, v in self.needed_lengths(raw_length).items()}

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """``PrefixLM().feature_lengths(512)`` is {'inputs': 512, 'targets': 512}."""
        return {"inputs": inputs_length, "targets": self.suggested_lengths(inputs_length - 1)["targets"]}


@gin.configurable("lm")
class LM(Objective):
    """Language modeling (T5's ``lm.gin``): targets = the whole segment + EOS, inputs empty (no EOS).

    Segments are ``targets_length - 1`` raw tokens (T5's ``split_tokens_to_targets_length``).

        tokens  = Thank you for inviting me to your party last week .
        inputs  = (length 0)
        targets = Thank you for inviting me to your party last week . EOS
    """

    length_features = ("targets",)
    uses_sentinels = False

    def __init__(self, name: str = "lm"):
        self.name = name

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        empty = Ragged(np.zeros(0, segments.values.dtype), np.zeros(len(segments), np.int64))
        return {"inputs": empty, "targets": segments.append(vocab.eos_id)}

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """``targets_length - 1``: ``LM().raw_length({'targets': 512})`` is 511."""
        targets_length = int(feature_lengths["targets"])
        if targets_length < 2:
            raise ValueError(f"lm needs targets >= 2, got {targets_length}. Set {gin_fix(self.feature_lengths(512))}")
        return targets_length - 1

    def needed_lengths(self, raw_length: int) -> dict[str, int]:
        return {"targets": raw_length + 1}

    suggested_lengths = needed_lengths

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """For LM the one length is the sequence length: {'inputs': 0, 'targets': inputs_length}."""
        return {"inputs": 0, "targets": inputs_length}


# --------------------------------------------------------------------------------------------------
# Named T5 objectives
# --------------------------------------------------------------------------------------------------

T5_OBJECTIVE_NAMES = (
    "iid_15_u_u", "iid_15_d_d", "iid_15_m_f", "iid_15_r10s90_f", "all_permute", "prefix_lm", "lm",
    "span_2_15_u_u", "span_3_15_u_u", "span_5_15_u_u", "span_10_15_u_u",
    "iid_10_u_u", "iid_25_u_u", "iid_50_u_u", "span_corruption",
)

_NAME = re.compile(r"^(?P<pattern>iid|regular|span_(?P<mean>\d+(?:\.\d+)?))_(?P<density>\d+)"
                   r"_(?P<inputs>u|d|m|r|r(?P<random>\d+)s(?P<sentinel>\d+))_(?P<targets>u|d|f)$")
_INPUTS_FNS = {"u": noise_span_to_unique_sentinel, "d": drop_noise_tokens, "m": noise_token_to_sentinel,
               "r": noise_token_to_random_token}
_TARGETS_FNS = {"u": nonnoise_span_to_unique_sentinel, "d": drop_nonnoise_tokens, "f": None}


def t5_objective(name: str, noise_density: float | None = None, mean_noise_span_length: float | None = None,
                 random_prob: float | None = None) -> Objective:
    """The objective named ``name`` in the t5 library's scheme (module docstring), with optional overrides.

    >>> t5_objective('iid_15_d_d').noise_density, t5_objective('span_5_15_u_u').mean_noise_span_length
    (0.15, 5.0)
    """
    def no(what, value):
        if value is not None:
            raise ValueError(f"{name} has no {what} to set.")

    if name in ("span_corruption", "prefix_lm", "lm", "all_permute"):
        no("random_prob", random_prob)
        if name != "span_corruption":
            no("mean_noise_span_length", mean_noise_span_length)
        if name == "span_corruption":
            return SpanCorruption(0.15 if noise_density is None else noise_density,
                                  3.0 if mean_noise_span_length is None else mean_noise_span_length)
        if name == "prefix_lm":
            return PrefixLM(0.5 if noise_density is None else noise_density)
        if name == "lm":
            no("noise_density", noise_density)
            return LM()
        return Denoise(iid_noise_mask, permute_noise_tokens, None, 1.0 if noise_density is None else noise_density,
                       name=name)
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"unknown objective name {name!r}: expected one of {T5_OBJECTIVE_NAMES} or "
                         "<iid|regular|span_MEAN>_<DENSITY%>_<u|d|m|r|rAsB>_<u|d|f>.")
    density = int(match["density"]) / 100 if noise_density is None else noise_density
    if match["mean"] is not None:
        if (match["inputs"], match["targets"]) != ("u", "u"):
            raise ValueError(f"{name}: span masks are used with unique sentinels (u_u) only.")
        no("random_prob", random_prob)
        mean = float(match["mean"]) if mean_noise_span_length is None else mean_noise_span_length
        return SpanCorruption(density, mean, name=name)
    no("mean_noise_span_length", mean_noise_span_length)
    mask_fn = iid_noise_mask if match["pattern"] == "iid" else regular_noise_mask
    if match["random"] is not None:
        prob = int(match["random"]) / 100 if random_prob is None else random_prob
        inputs_fn = functools.partial(noise_token_to_random_token_or_sentinel, random_prob=prob)
    else:
        no("random_prob", random_prob)
        inputs_fn = _INPUTS_FNS[match["inputs"]]
    return Denoise(mask_fn, inputs_fn, _TARGETS_FNS[match["targets"]], density, name=name)


def _register(name: str):
    def make(noise_density: float | None = None, mean_noise_span_length: float | None = None,
             random_prob: float | None = None) -> Objective:
        return t5_objective(name, noise_density, mean_noise_span_length, random_prob)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"The T5 objective ``{name}`` (see ``t5_objective``); gin: ``train.objective = @{name}()``."
    return gin.configurable(name)(make)


# span_corruption, prefix_lm and lm are the classes above; the others are factories of Denoise/SpanCorruption.
NAMED_OBJECTIVES = {name: _register(name) for name in T5_OBJECTIVE_NAMES
                    if name not in ("span_corruption", "prefix_lm", "lm")}
NAMED_OBJECTIVES.update(span_corruption=SpanCorruption, prefix_lm=PrefixLM, lm=LM)
iid_15_u_u = NAMED_OBJECTIVES["iid_15_u_u"]
iid_15_d_d = NAMED_OBJECTIVES["iid_15_d_d"]
iid_15_m_f = NAMED_OBJECTIVES["iid_15_m_f"]
iid_15_r10s90_f = NAMED_OBJECTIVES["iid_15_r10s90_f"]
all_permute = NAMED_OBJECTIVES["all_permute"]
iid_10_u_u = NAMED_OBJECTIVES["iid_10_u_u"]
iid_25_u_u = NAMED_OBJECTIVES["iid_25_u_u"]
iid_50_u_u = NAMED_OBJECTIVES["iid_50_u_u"]
span_2_15_u_u = NAMED_OBJECTIVES["span_2_15_u_u"]
span_3_15_u_u = NAMED_OBJECTIVES["span_3_15_u_u"]
span_5_15_u_u = NAMED_OBJECTIVES["span_5_15_u_u"]
span_10_15_u_u = NAMED_OBJECTIVES["span_10_15_u_u"]


def length_table(inputs_length: int = 512) -> dict[str, dict[str, int]]:
    """Per named objective: raw tokens, needed and suggested lengths for ``inputs_length`` inputs."""
    table = {}
    for name in T5_OBJECTIVE_NAMES:
        objective = t5_objective(name)
        lengths = objective.feature_lengths(inputs_length)
        raw = objective.raw_length(lengths)
        table[name] = {"raw": raw, "needed": objective.needed_lengths(raw), "suggested": lengths}
    return table
