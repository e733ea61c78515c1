"""T5 Table 2: five architectures x two objectives, three seeds each (30 runs).

    t2t data build-local && t2t data build-eval          # once: the corpus and the offline suite
    t2t sweep run experiments/t5_table2/sweep.py
    t2t sweep report experiments/t5_table2/sweep.py --out experiments/t5_table2

Each trial is one gin experiment of gin_configs/experiments/t5_table2/. At the default CPU scale
(t2t/sweeps/scales.py) those are tiny models (models/t5_table2_tiny/, runs/cpu_ablation.gin)
trained 200 steps on the local corpus, about two minutes each on a 2-core CPU; every run is then
fine-tuned on the offline suite's topic classification (150 steps, T5's constant 1e-3) and scored
by rank classification on 300 test examples, as the paper fine-tunes and evaluates every variant
the same way. ``T2T_SWEEP_SCALE=paper`` gives the paper's runs instead: full-size models, 2^19
steps on C4, fine-tuned and scored on T5's TFDS tasks (see the README for the pod commands).
Rows are in the paper's order; the tags select the paper's row (t2t/sweeps/paper.py).
"""

from t2t.sweeps.scales import current_scale
from t2t.sweeps.spec import Sweep

# The paper's row order: Encoder-decoder, Enc-dec shared, Enc-dec 6 layers, Language model,
# Prefix LM.
ARCHITECTURES = ("encoder_decoder", "shared", "encoder_decoder_half", "language_model", "prefix_lm")
OBJECTIVES = ("denoising", "lm")
SCALE = current_scale()

SWEEP = Sweep(
    name="t5_table2",
    trials=[SCALE.trial(f"{arch}-{objective}", f"experiments/t5_table2/{arch}-{objective}.gin",
                        arch, tags={"architecture": arch, "objective": objective})
            for objective in OBJECTIVES for arch in ARCHITECTURES],
    seeds=(0, 1, 2),
    bindings=SCALE.bindings,
)
