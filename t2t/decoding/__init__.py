"""Inference: decoding with a key/value cache, scoring, and `t2t infer`.

    adapter.py      a model + parameters as start / step / gather functions (EncoderDecoder,
                    DecoderOnly causal or prefix LM), over the KV cache of t2t.models.layers
    greedy.py       the left-to-right decoding loop (lax.while_loop), and greedy decoding
    sampling.py     temperature / top-k / top-p sampling, seeded
    beam_search.py  beam search with T5's length penalty
    scoring.py      log-likelihood of given targets (teacher forcing), for rank classification
    run_dir.py      a trained run directory read back: config, vocabulary, parameters
    predictor.py    Predictor: texts in, texts or scores out, in fixed-shape batches
    infer.py        `t2t infer` (main)

Every search is jit-compiled over fixed shapes, batch-first; EOS (1) stops a row, PAD (0) follows.
"""
