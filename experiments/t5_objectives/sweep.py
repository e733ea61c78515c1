"""T5 Tables 4-7 at CPU scale: the pre-training objectives on the baseline encoder-decoder, three
seeds each (13 objectives, 39 runs).

    t2t sweep run experiments/t5_objectives/sweep.py
    t2t sweep report experiments/t5_objectives/sweep.py --out experiments/t5_objectives

Each trial is one gin experiment of gin_configs/experiments/t5_objectives/, named after its
objective's gin file (gin_configs/objectives/), shortened to 200 steps so that a run takes about
two minutes on a 2-core CPU. Rows follow the paper's tables; a row that is in several tables is
listed once, at its first. ``objective`` selects the paper's row (t2t/sweeps/paper.py).
"""

from t2t.sweeps.spec import Sweep, Trial

# (objective gin name, the tables of the paper it is a row of), in the paper's order.
OBJECTIVES = (
    ("prefix_lm", "4"), ("iid_15_r10s90_f", "4-5"), ("all_permute", "4"),  # Table 4
    ("iid_15_m_f", "5"), ("iid_15_u_u", "5-7"), ("iid_15_d_d", "5"),  # Table 5
    ("iid_10_u_u", "6"), ("iid_25_u_u", "6"), ("iid_50_u_u", "6"),  # Table 6
    ("span_2_15_u_u", "7"), ("span_3_15_u_u", "7"), ("span_5_15_u_u", "7"),  # Table 7
    ("span_10_15_u_u", "7"),
)

SWEEP = Sweep(
    name="t5_objectives",
    trials=[Trial(name=objective,
                  gin_files=(f"experiments/t5_objectives/{objective}.gin",),
                  tags={"table": table, "objective": objective})
            for objective, table in OBJECTIVES],
    seeds=(0, 1, 2),
    # runs/cpu_ablation.gin trains 600 steps; 200 keep the sweep to about 80 minutes per seed.
    bindings={"TRAIN_STEPS": 200, "train.eval_every": 100, "train.checkpoint_every": 100},
)
