"""The reversal curse at CPU scale: three decoder-only sizes trained from scratch on fictitious
facts (t2t/evaluation/reversal.py), each asked every fact in both directions.

    t2t sweep run experiments/reversal_curse/sweep.py
    python experiments/reversal_curse/report.py runs/sweeps/reversal_curse

Run from the repository root. The rungs are `t2t.scaling.ladder`'s decoder-only ladder at width 32.
"""

from t2t.scaling.isoflop import model_bindings
from t2t.scaling.ladder import ladder_point
from t2t.sweeps.spec import Sweep, Trial

KNOBS = (1, 2, 3)
WIDTH = 32
ROWS = 1152  # spm_1k: 1,024 pieces + 100 sentinels, padded
EVAL = "{python} -m t2t.evaluation.reversal eval --run_dir {model_dir}"


def _trial(knob: int) -> Trial:
    point = ladder_point("decoder_only", knob, ROWS, {"targets": 64}, width=WIDTH)
    return Trial(name=f"knob{knob}",
                 gin_files=("experiments/reversal_curse/facts.gin",),
                 bindings={**model_bindings(point.config, "gpt2/tiny")},
                 tags={"knob": knob, "params": point.non_embedding_params,
                       "total_params": point.params},
                 after=(EVAL,))


SWEEP = Sweep(name="reversal_curse", trials=[_trial(k) for k in KNOBS])
