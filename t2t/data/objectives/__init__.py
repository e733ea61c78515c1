"""Pre-training objectives: raw token segments -> examples (T5 semantics and BERT / RoBERTa / BART; NumPy).

    ragged.py      Ragged: a batch of variable-length rows as flat values + lengths
    vocab_info.py  VocabInfo: vocabulary sizes, special ids, sentence-end pieces
    masks.py       noise masks: i.i.d., random spans, random prefix, regular
    transforms.py  input/target functions: sentinels, drop, random tokens, permute
    base.py        the objective protocol; length checks and overflow re-draws
    denoise.py     Denoise, span corruption, prefix LM, LM and the named T5 objectives
    bert.py        BERT (MLM + NSP) and RoBERTa (MLM)
    bart.py        BART's composable noising
    supervised.py  (inputs, targets) pairs for fine-tuning, one example per document
    encoder_tasks.py  labelled fine-tuning tasks of encoder-only models: sequence and pair
                   classification, token tagging, extractive span QA

Every objective is vectorised over a block of segments, draws all randomness from the
``np.random.Generator`` it is given (same generator state, same examples), never truncates, and documents
a token-level worked example.
"""

from t2t.data.objectives.bart import (Bart, DocumentRotation, SentencePermutation, TextInfilling, TokenDeletion,
                                      TokenMasking, infill, permute_sentences, rotate)
from t2t.data.objectives.base import MLM, TEXT_TO_TEXT, Objective, ObjectiveProtocol, by_length_groups
from t2t.data.objectives.bert import BertMLM, RobertaMLM, choose_positions, corrupt
from t2t.data.objectives.denoise import (LM, NAMED_OBJECTIVES, T5_OBJECTIVE_NAMES, Denoise, PrefixLM, SpanCorruption,
                                         all_permute, iid_10_u_u, iid_15_d_d, iid_15_m_f, iid_15_r10s90_f,
                                         iid_15_u_u, iid_25_u_u, iid_50_u_u, length_table, random_spans_helper,
                                         span_2_15_u_u, span_3_15_u_u, span_5_15_u_u, span_10_15_u_u, t5_objective)
from t2t.data.objectives.masks import (NoiseMaskFn, iid_noise_mask, random_prefix_noise_mask,
                                       random_spans_noise_mask, regular_noise_mask)
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.encoder_tasks import (SentencePairClassification, SequenceClassification, SpanQA,
                                               TokenTagging)
from t2t.data.objectives.supervised import Supervised
from t2t.data.objectives.transforms import (InputsTargetsFn, drop_noise_tokens, drop_nonnoise_tokens,
                                            noise_span_to_sentinel, noise_span_to_unique_sentinel,
                                            noise_token_to_random_token, noise_token_to_random_token_or_sentinel,
                                            noise_token_to_sentinel, nonnoise_span_to_sentinel,
                                            nonnoise_span_to_unique_sentinel, permute_noise_tokens)
from t2t.data.objectives.vocab_info import VocabInfo

__all__ = [
    "Bart", "BertMLM", "Denoise", "DocumentRotation", "Examples", "InputsTargetsFn", "LM", "MLM", "NAMED_OBJECTIVES",
    "NoiseMaskFn", "Objective", "ObjectiveProtocol", "PrefixLM", "Ragged", "RobertaMLM", "SentencePermutation",
    "SentencePairClassification", "SequenceClassification", "SpanCorruption", "SpanQA", "Supervised", "T5_OBJECTIVE_NAMES", "TEXT_TO_TEXT", "TextInfilling", "TokenDeletion", "TokenMasking",
    "TokenTagging", "VocabInfo", "all_permute", "by_length_groups", "choose_positions", "corrupt", "drop_noise_tokens",
    "drop_nonnoise_tokens", "iid_10_u_u", "iid_15_d_d", "iid_15_m_f", "iid_15_r10s90_f", "iid_15_u_u", "iid_25_u_u",
    "iid_50_u_u", "iid_noise_mask", "infill", "length_table", "noise_span_to_sentinel",
    "noise_span_to_unique_sentinel", "noise_token_to_random_token", "noise_token_to_random_token_or_sentinel",
    "noise_token_to_sentinel", "nonnoise_span_to_sentinel", "nonnoise_span_to_unique_sentinel",
    "permute_noise_tokens", "permute_sentences", "random_prefix_noise_mask", "random_spans_helper",
    "random_spans_noise_mask", "regular_noise_mask", "rotate", "span_10_15_u_u", "span_2_15_u_u", "span_3_15_u_u",
    "span_5_15_u_u", "t5_objective",
]
