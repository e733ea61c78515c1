"""In-context learning curves (GPT-3 Fig. 1.2 at CPU scale): three decoder-only sizes pretrained on
the synthetic meta-learning corpus, each evaluated with 0-8 demonstrations, with and without the
task description.

    t2t sweep run experiments/in_context_learning/sweep.py
    python experiments/in_context_learning/report.py runs/sweeps/in_context_learning

Run from the repository root (the gin files and the vocabulary are relative paths). The rungs are
`t2t.scaling.ladder`'s decoder-only ladder at width 32 (d_model = 32 * knob, knob layers).
"""

from t2t.scaling.isoflop import model_bindings
from t2t.scaling.ladder import ladder_point
from t2t.sweeps.spec import Sweep, Trial

KNOBS = (1, 2, 3)
WIDTH = 32
ROWS = 1152  # spm_1k: 1,024 pieces + 100 sentinels, padded
# GPT-3's headline task and the best-learned one, each with its capitalising twin (synthetic_tasks).
TASKS = ("symbol_removal", "symbol_removal_capitalised", "reversed_words",
         "reversed_words_capitalised")
EVAL = ("{python} -m t2t.evaluation.in_context --run_dir {model_dir} --shots 0,1,2,4,8 "
        "--num_examples 100 " + " ".join(f"--task {t}" for t in TASKS))


def _trial(knob: int) -> Trial:
    point = ladder_point("decoder_only", knob, ROWS, {"targets": 128}, width=WIDTH)
    return Trial(name=f"knob{knob}",
                 gin_files=("experiments/in_context/meta_learning.gin",),
                 bindings={**model_bindings(point.config, "gpt2/tiny")},
                 tags={"knob": knob, "params": point.non_embedding_params,
                       "total_params": point.params},
                 after=(EVAL,))


SWEEP = Sweep(name="in_context_learning", trials=[_trial(k) for k in KNOBS])
