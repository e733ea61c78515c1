"""Supervised text-to-text examples (fine-tuning): each document is one (inputs, targets) pair.

The source reads two fields of each JSON line (``field="inputs,targets"``, set from
``source_field``), so a document arrives as the JSON list ``["<inputs>", "<targets>"]``.
``encode_documents`` tokenises both halves into one array, ``[n_inputs, *inputs, *targets]``
(so the pipeline's token cache stores pairs like any document), and ``from_documents`` turns
each document into one example instead of cutting a token stream into segments. As in T5's
fine-tuning tasks, both sides get EOS and are truncated to their feature lengths (EOS kept).

    record   {"inputs": "topic: The Danube flows ...", "targets": "geography"}
    tokens   [4, 1345, 12, 77, 9, 2301]            n_inputs 4, inputs 1345 12 77 9, targets 2301
    example  inputs  = 1345 12 77 9 EOS
             targets = 2301 EOS

For decoder-only models the converter concatenates inputs and targets (prefix LM / LM with the
loss on the targets only); for encoder-decoders they feed the encoder and decoder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import gin
import numpy as np

from t2t.data.objectives.base import TEXT_TO_TEXT
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.vocab_info import VocabInfo


@gin.configurable("supervised")
class Supervised:
    """Fine-tuning on (inputs, targets) pairs; `inputs_field`/`targets_field` name the JSON fields."""

    family_features = TEXT_TO_TEXT
    uses_sentinels = False
    per_document = True

    def __init__(self, inputs_field: str = "inputs", targets_field: str = "targets"):
        self.inputs_field, self.targets_field = inputs_field, targets_field

    @property
    def source_field(self) -> str:
        """What the source reads from each JSON line (both fields, as a JSON list)."""
        return f"{self.inputs_field},{self.targets_field}"

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """Examples are whole documents: the length check is that both sides hold at least EOS."""
        if int(feature_lengths.get("targets", 0)) < 1:
            raise ValueError(f"supervised fine-tuning needs targets >= 1, got {dict(feature_lengths)}; "
                             "set --gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 64}\"")
        return sum(int(v) for v in feature_lengths.values())

    def encode_documents(self, vocab, texts: Sequence[str]) -> list[np.ndarray]:
        """Each JSON pair -> ``[n_inputs, *inputs, *targets]`` (int32)."""
        pairs = [json.loads(t) for t in texts]
        encoded = vocab.encode_batch([p[0] for p in pairs] + [p[1] for p in pairs])
        n = len(pairs)
        return [np.concatenate([[len(encoded[i])], encoded[i], encoded[n + i]]).astype(np.int32)
                for i in range(n)]

    def from_documents(self, docs: Sequence[np.ndarray], rng: np.random.Generator, vocab: VocabInfo,
                       feature_lengths: Mapping[str, int]) -> Examples:
        """One example per document; `rng` is unused (no noise)."""
        del rng
        rows: dict[str, list[np.ndarray]] = {"inputs": [], "targets": []}
        for doc in docs:
            n = int(doc[0])
            for name, part in (("inputs", doc[1:1 + n]), ("targets", doc[1 + n:])):
                limit = int(feature_lengths.get(name, 0))
                if limit == 0:  # an LM-style task with no inputs feature
                    rows[name].append(np.zeros(0, np.int32))
                    continue
                rows[name].append(np.append(part[:limit - 1], vocab.eos_id).astype(np.int32))
        return {k: Ragged.from_rows(v) for k, v in rows.items()}
