"""A CPU-scale isoFLOP ladder: encoder-decoder and decoder-only, three budgets x three or four sizes.

    t2t sweep run experiments/scaling_ladder/sweep.py
    t2t scaling fit runs/sweeps/scaling_ladder --out experiments/scaling_ladder
    t2t scaling plot runs/sweeps/scaling_ladder --out experiments/scaling_ladder/plots

19 runs on the embedded corpus; see README.md for the time they take, and for the same ladder on a
pod. Every run spends its budget C to within half a step (t2t.scaling.isoflop), with a cosine
schedule over its own length (ladder_run.gin). Run from the repository root: paths are relative.

Why these choices, at a scale where a 2-core CPU does about 3e13 FLOPs in 20 minutes:
- a 1,024-piece vocabulary (spm_1k.model, trained on the embedded corpus with
  `t2t vocab train --input=embedded --output=experiments/scaling_ladder/spm_1k --vocab_size=1024`):
  with the 8k one, the output layer's 2 · d_model · 8,192 FLOPs per token dwarf the blocks of models
  this small, and the smallest model wins at every budget a CPU can afford;
- narrow rungs (d_model = width · knob, `t2t.scaling.ladder`): width 16 for the decoder-only ladder
  (3k to 200k non-embedding parameters) and 8 for the encoder-decoder one (2k to 110k), whose
  best sizes at these budgets are smaller still (each token passes through only one of its stacks);
- a window of three knobs per budget, moving up with the budget, around the best sizes that pilot
  runs found, so that each curve's best run has a smaller and a larger neighbour (Hoffmann et al.
  chose their grids alike); the decoder-only ladder's best run at 3.2e12 was its smallest (knob 2),
  so that budget also trains knob 1. At 8e11 its best is knob 1, the smallest rung there is.
"""

from pathlib import Path

from t2t.data.vocab import Vocabulary
from t2t.scaling.isoflop import LadderSetup, plan_isoflop, trial
from t2t.sweeps.spec import Sweep

HERE = "experiments/scaling_ladder"
VOCABULARY = f"{HERE}/spm_1k.model"
# 1,024 pieces + 100 sentinels -> 1,152 embedding rows (read from this folder, wherever run from).
ROWS = Vocabulary(Path(__file__).parent / "spm_1k.model").padded_vocab_size
RUN_GIN = f"{HERE}/ladder_run.gin"

SETUPS = [
    # random_spans_helper(128, 0.15, 3.0) = (141 raw tokens, 29 targets): rows filled exactly.
    LadderSetup("encoder_decoder", (f"{HERE}/encoder_decoder.gin", RUN_GIN),
                feature_lengths={"inputs": 128, "targets": 29}, batch_size=32, vocab_size=ROWS,
                width=8),
    LadderSetup("decoder_only", (f"{HERE}/decoder_only.gin", RUN_GIN),
                feature_lengths={"targets": 128}, batch_size=32, vocab_size=ROWS, width=16),
]
# Family -> budget (training FLOPs) -> the knobs trained on it.
GRID = {"encoder_decoder": {8e11: (1, 2, 3), 1.6e12: (1, 2, 3), 3.2e12: (2, 3, 4)},
        "decoder_only": {8e11: (1, 2, 3), 1.6e12: (1, 2, 3), 3.2e12: (1, 2, 3, 4)}}

SWEEP = Sweep(
    name="scaling_ladder",
    trials=[trial(run) for setup in SETUPS for budget, knobs in GRID[setup.family].items()
            for run in plan_isoflop(setup, [budget], knobs, min_steps=50)],
    bindings={"VOCABULARY": VOCABULARY},
)
