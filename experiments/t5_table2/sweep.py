"""T5 Table 2 at CPU scale: five architectures x two objectives, three seeds each (30 runs).

    t2t sweep run experiments/t5_table2/sweep.py
    t2t sweep report experiments/t5_table2/sweep.py --out experiments/t5_table2

Each trial is one gin experiment of gin_configs/experiments/t5_table2/ (tiny models of
models/t5_table2_tiny/, runs/cpu_ablation.gin) on the local corpus, shortened to 200 steps so that a
pretraining run takes about two minutes on a 2-core CPU. Every run is then fine-tuned on the offline
suite's topic classification (`t2t data build-eval`; 150 steps, T5's constant 1e-3) and scored by
rank classification on 300 test examples, as the paper fine-tunes and evaluates every variant the
same way. Rows are in the paper's order; the tags select the paper's row (t2t/sweeps/paper.py) for
the report.
"""

from t2t.sweeps.downstream import finetune_then_eval
from t2t.sweeps.spec import Sweep, Trial

# The paper's row order: Encoder-decoder, Enc-dec shared, Enc-dec 6 layers, Language model,
# Prefix LM.
ARCHITECTURES = ("encoder_decoder", "shared", "encoder_decoder_half", "language_model", "prefix_lm")
OBJECTIVES = ("denoising", "lm")

SWEEP = Sweep(
    name="t5_table2",
    trials=[Trial(name=f"{arch}-{objective}",
                  gin_files=(f"experiments/t5_table2/{arch}-{objective}.gin",),
                  tags={"architecture": arch, "objective": objective},
                  # Inputs as in pretraining; the longest topic label is 8 pieces (+ EOS).
                  after=finetune_then_eval("experiments/t5_table2/{trial}.gin", "wiki_topic",
                                           train_steps=150, max_examples=300,
                                           feature_lengths={"inputs": 128, "targets": 16}))
            for objective in OBJECTIVES for arch in ARCHITECTURES],
    seeds=(0, 1, 2),
    # runs/cpu_ablation.gin trains 600 steps; 200 keep the sweep to about an hour per seed.
    # On the local corpus of `t2t data build-local` (run it once first), as the issue asks.
    bindings={"TRAIN_STEPS": 200, "train.eval_every": 100, "train.checkpoint_every": 100,
              "DATA_SOURCE": "local:~/.cache/t2t/local_corpus"},
)
