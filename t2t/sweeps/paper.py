"""The T5 paper's published scores for the rows our sweeps reproduce: Table 2 (architectures x
objectives) and Tables 4-7 (pre-training objectives), every column.

Source: Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", JMLR 21(140), 2020 (arXiv:1910.10683), Tables 2, 4, 5, 6 and 7, as transcribed in
the project's T5 reference notes (§3 and §5). Scores are after fine-tuning each pre-trained model
on each task: GLUE and SuperGLUE averages, CNN/DM ROUGE-2-F, SQuAD exact match, WMT SacreBLEU;
validation sets.

A trial finds its row by its tags:

- Table 2: ``architecture`` (``encoder_decoder``, ``shared``, ``encoder_decoder_half``,
  ``language_model``, ``prefix_lm``: the model names in ``gin_configs/models/t5_table2/``) and
  ``objective`` (``denoising`` or ``lm``).
- Tables 4-7: ``objective`` = the gin name of the objective (``gin_configs/objectives/``:
  ``iid_15_u_u``, ``span_3_15_u_u``, ...), with no ``architecture`` tag or
  ``architecture=encoder_decoder`` (all of these rows use the baseline encoder-decoder).

Rows that several tables share hold the same numbers in each (the baseline is Table 2's first row
and the starred row of Tables 5, 6 and 7; BERT-style is in Tables 4 and 5): one entry each here,
naming every table it is in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

COLUMNS = ("GLUE", "CNNDM", "SQuAD", "SGLUE", "EnDe", "EnFr", "EnRo")
CITATION = "Raffel et al. (2020), JMLR 21(140)"


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One published row: where it is, its label there, the tags that select it, its scores."""

    tables: str
    label: str
    match: Mapping[str, str]
    scores: Mapping[str, float]

    @property
    def source(self) -> str:
        return f"T5 {self.tables}: {self.label}"


def _row(tables: str, label: str, match: dict[str, str], *scores: float) -> PaperRow:
    assert len(scores) == len(COLUMNS), label
    return PaperRow(tables, label, match, dict(zip(COLUMNS, scores)))


def _t2(arch: str, label: str, objective: str, *scores: float) -> PaperRow:
    return _row("Table 2", f"{label}, {objective}",
                {"architecture": arch, "objective": objective.lower()}, *scores)


PAPER_ROWS: tuple[PaperRow, ...] = (
    # Table 2.              GLUE   CNNDM  SQuAD  SGLUE  EnDe   EnFr   EnRo
    _t2("encoder_decoder", "Encoder-decoder", "Denoising",
        83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65),
    _t2("shared", "Enc-dec, shared", "Denoising",
        82.81, 18.78, 80.63, 70.73, 26.72, 39.03, 27.46),
    _t2("encoder_decoder_half", "Enc-dec, 6 layers", "Denoising",
        80.88, 18.97, 77.59, 68.42, 26.38, 38.40, 26.95),
    _t2("language_model", "Language model", "Denoising",
        74.70, 17.93, 61.14, 55.02, 25.09, 35.28, 25.86),
    _t2("prefix_lm", "Prefix LM", "Denoising",
        81.82, 18.61, 78.94, 68.11, 26.43, 37.98, 27.39),
    _t2("encoder_decoder", "Encoder-decoder", "LM",
        79.56, 18.59, 76.02, 64.29, 26.27, 39.17, 26.86),
    _t2("shared", "Enc-dec, shared", "LM",
        79.60, 18.13, 76.35, 63.50, 26.62, 39.17, 27.05),
    _t2("encoder_decoder_half", "Enc-dec, 6 layers", "LM",
        78.67, 18.26, 75.32, 64.06, 26.13, 38.42, 26.89),
    _t2("language_model", "Language model", "LM",
        73.78, 17.54, 53.81, 56.51, 25.23, 34.31, 25.38),
    _t2("prefix_lm", "Prefix LM", "LM",
        79.68, 17.84, 76.87, 64.86, 26.28, 37.51, 26.76),
    # Table 4: high-level approaches.
    _row("Table 4", "Prefix language modeling", {"objective": "prefix_lm"},
         80.69, 18.94, 77.99, 65.27, 26.86, 39.73, 27.49),
    _row("Tables 4-5", "BERT-style", {"objective": "iid_15_r10s90_f"},
         82.96, 19.17, 80.65, 69.85, 26.78, 40.03, 27.41),
    _row("Table 4", "Deshuffling", {"objective": "all_permute"},
         73.17, 18.59, 67.61, 58.47, 26.11, 39.30, 25.62),
    # Table 5: simplifying the BERT objective.
    _row("Table 5", "MASS-style", {"objective": "iid_15_m_f"},
         82.32, 19.16, 80.10, 69.28, 26.79, 39.89, 27.55),
    _row("Tables 5-7", "Replace corrupted spans (baseline, i.i.d. 15%)",
         {"objective": "iid_15_u_u"},
         83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65),
    _row("Table 5", "Drop corrupted tokens", {"objective": "iid_15_d_d"},
         84.44, 19.31, 80.52, 68.67, 27.07, 39.76, 27.82),
    # Table 6: corruption rate (i.i.d., replace spans).
    _row("Table 6", "Corruption rate 10%", {"objective": "iid_10_u_u"},
         82.82, 19.00, 80.38, 69.55, 26.87, 39.28, 27.44),
    _row("Table 6", "Corruption rate 25%", {"objective": "iid_25_u_u"},
         83.00, 19.54, 80.96, 70.48, 27.04, 39.83, 27.47),
    _row("Table 6", "Corruption rate 50%", {"objective": "iid_50_u_u"},
         81.27, 19.32, 79.80, 70.33, 27.01, 39.90, 27.49),
    # Table 7: mean span length (15% corruption).
    _row("Table 7", "Span length 2", {"objective": "span_2_15_u_u"},
         83.54, 19.39, 82.09, 72.20, 26.76, 39.99, 27.63),
    _row("Table 7", "Span length 3", {"objective": "span_3_15_u_u"},
         83.49, 19.62, 81.84, 72.53, 26.86, 39.65, 27.62),
    _row("Table 7", "Span length 5", {"objective": "span_5_15_u_u"},
         83.40, 19.24, 82.05, 72.23, 26.88, 39.40, 27.53),
    _row("Table 7", "Span length 10", {"objective": "span_10_15_u_u"},
         82.85, 19.33, 81.84, 70.44, 26.79, 39.49, 27.69),
)


def find_row(tags: Mapping[str, Any]) -> PaperRow | None:
    """The published row whose selecting tags all equal the trial's, or None.

    Tables 4-7 rows select by objective only, so they apply to the baseline encoder-decoder alone:
    a trial tagged with another architecture matches no Tables 4-7 row.

    >>> find_row({"architecture": "shared", "objective": "lm"}).source
    'T5 Table 2: Enc-dec, shared, LM'
    >>> find_row({"table": "7", "objective": "span_3_15_u_u"}).scores["SQuAD"]
    81.84
    """
    tags = {k: str(v) for k, v in tags.items()}
    for row in PAPER_ROWS:
        if all(tags.get(k) == v for k, v in row.match.items()):
            if "architecture" in row.match or tags.get("architecture", "encoder_decoder") == \
                    "encoder_decoder":
                return row
    return None


# The published column that a downstream task's metrics are ranked against: the same language
# pair for translation, the same kind of task otherwise (our short-description generation is
# summarisation, as CNN/DM is); a task of the paper's own scale to its column.
TASK_COLUMNS = {
    "gettext_ende": "EnDe", "gettext_enfr": "EnFr", "gettext_enro": "EnRo",
    "wmt14_ende": "EnDe", "wmt14_enfr": "EnFr", "wmt16_enro": "EnRo",
    "wiki_description": "CNNDM", "cnn_dailymail": "CNNDM", "squad": "SQuAD",
}
# Everything else (held-out loss, topic classification): the paper's headline GLUE average.
DEFAULT_COLUMN = "GLUE"


def paper_column(metric: str) -> str:
    """The column of `PAPER_ROWS` that the report ranks `metric` (a report column) against.

    >>> paper_column("eval:gettext_enfr/bleu"), paper_column("eval:wiki_description/target_nll")
    ('EnFr', 'CNNDM')
    >>> paper_column("eval:super_glue_boolq/accuracy"), paper_column("validation/loss")
    ('SGLUE', 'GLUE')
    """
    task = metric.split(":", 1)[1].split("/", 1)[0] if metric.startswith("eval:") else ""
    if task.startswith("super_glue_"):
        return "SGLUE"
    return TASK_COLUMNS.get(task, DEFAULT_COLUMN)
