"""T5 Tables 4-7: the pre-training objectives on the baseline encoder-decoder, three seeds each
(13 objectives, 39 runs).

    t2t data build-local && t2t data build-eval          # once: the corpus and the offline suite
    t2t sweep run experiments/t5_objectives/sweep.py
    t2t sweep report experiments/t5_objectives/sweep.py --out experiments/t5_objectives

Each trial is one gin experiment of gin_configs/experiments/t5_objectives/, named after its
objective's gin file (gin_configs/objectives/). Scales as in experiments/t5_table2/sweep.py
(t2t/sweeps/scales.py): at the default CPU scale a tiny encoder-decoder trains 200 steps on the
local corpus and is fine-tuned and scored on the offline topic task; ``T2T_SWEEP_SCALE=paper``
gives the paper's runs. Rows follow the paper's tables; a row that is in several tables is listed
once, at its first. ``objective`` selects the paper's row (t2t/sweeps/paper.py).
"""

from t2t.sweeps.scales import current_scale
from t2t.sweeps.spec import Sweep

# (objective gin name, the tables of the paper it is a row of), in the paper's order.
OBJECTIVES = (
    ("prefix_lm", "4"), ("iid_15_r10s90_f", "4-5"), ("all_permute", "4"),  # Table 4
    ("iid_15_m_f", "5"), ("iid_15_u_u", "5-7"), ("iid_15_d_d", "5"),  # Table 5
    ("iid_10_u_u", "6"), ("iid_25_u_u", "6"), ("iid_50_u_u", "6"),  # Table 6
    ("span_2_15_u_u", "7"), ("span_3_15_u_u", "7"), ("span_5_15_u_u", "7"),  # Table 7
    ("span_10_15_u_u", "7"),
)
SCALE = current_scale()

SWEEP = Sweep(
    name="t5_objectives",
    trials=[SCALE.trial(objective, f"experiments/t5_objectives/{objective}.gin", "encoder_decoder",
                        tags={"table": table, "objective": objective})
            for objective, table in OBJECTIVES],
    seeds=(0, 1, 2),
    bindings=SCALE.bindings,
)
