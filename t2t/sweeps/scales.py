"""One T5 reproduction sweep, two scales: tiny on a CPU, or the paper's on a TPU pod.

A trial's experiment gin file (gin_configs/experiments/t5_table2/, .../t5_objectives/) describes the
CPU-scale run. The paper scale appends gin files that override what differs, as T5X swaps gin
includes: the architecture's full-size model, T5's pretraining settings and C4 from TFDS. The
downstream evaluation differs too: the CPU scale fine-tunes on five tasks of the offline suite
(topic classification, description generation, English to German, French and Romanian), the paper
scale on
the T5 paper's TFDS tasks (GLUE, SuperGLUE, CNN/DM, SQuAD, WMT).

    scale   model                       run settings                   data          downstream
    cpu     models/t5_table2_tiny/ARCH  runs/cpu_ablation.gin, 200 st  local corpus  offline suite
    paper   models/t5_table2/ARCH       runs/t5_paper_ablation.gin     C4 (TFDS)     T5's tasks

A sweep file reads the scale from ``$T2T_SWEEP_SCALE`` (default ``cpu``), so the same file prints
the pod's commands::

    T2T_SWEEP_SCALE=paper t2t sweep launch experiments/t5_table2/sweep.py --target tpu ...
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from t2t.sweeps.downstream import finetune_then_eval
from t2t.sweeps.spec import Trial

SCALE_ENV = "T2T_SWEEP_SCALE"

# The T5 paper's downstream tasks (Table 2's columns; GLUE and SuperGLUE by their tasks).
PAPER_TASKS = ("glue_cola", "glue_sst2", "glue_mrpc", "glue_stsb", "glue_qqp", "glue_mnli",
               "glue_qnli", "glue_rte", "cnn_dailymail", "squad", "super_glue_boolq",
               "super_glue_cb", "super_glue_copa", "super_glue_multirc", "super_glue_record",
               "super_glue_rte", "super_glue_wic", "super_glue_wsc_simple", "wmt14_ende",
               "wmt14_enfr", "wmt16_enro")


@dataclasses.dataclass(frozen=True)
class Downstream:
    """One downstream task of a scale: ``steps`` of fine-tuning at ``feature_lengths``, then
    evaluation on the first ``max_examples`` examples of its evaluation split (None: all).
    Generation decodes up to the fine-tuning run's target length."""

    task: str
    steps: int
    feature_lengths: Mapping[str, int]
    max_examples: int | None = None


@dataclasses.dataclass(frozen=True)
class Scale:
    """What a scale adds to every trial of a T5 reproduction sweep.

    ``model_dir`` names the folder of gin_configs/models/ holding one file per Table 2
    architecture; ``gin_files`` come after the trial's own (so their bindings win); ``bindings``
    apply to every run; each of ``downstream`` fine-tunes and evaluates every run after
    pretraining; ``finetune_source`` is the fine-tuning data of a task, ``{task}`` filled in
    (None: the ``task:<name>`` source).
    """

    name: str
    model_dir: str
    gin_files: tuple[str, ...]
    bindings: Mapping[str, Any]
    downstream: tuple[Downstream, ...]
    finetune_source: str | None = None

    def trial(self, name: str, experiment_gin: str, architecture: str,
              tags: Mapping[str, Any]) -> Trial:
        """The trial ``name`` of ``experiment_gin`` at this scale, fine-tuned and evaluated after
        pretraining on each downstream task."""
        gin_files = (experiment_gin,)
        if self.name != "cpu":  # the CPU scale is what the experiment file already says
            gin_files += (f"models/{self.model_dir}/{architecture}.gin",) + self.gin_files
        after = ()
        for task in self.downstream:
            source = (self.finetune_source.format(task=task.task) if self.finetune_source
                      else None)
            after += finetune_then_eval(experiment_gin, task.task, train_steps=task.steps,
                                        data_source=source, max_examples=task.max_examples,
                                        feature_lengths=task.feature_lengths,
                                        rank_classification=_is_classification(task.task),
                                        extra_gin_files=gin_files[1:])
        return Trial(name=name, gin_files=gin_files, tags=dict(tags), after=after)


def _is_classification(task: str) -> bool:
    from t2t.evaluation.tasks import get_task

    return get_task(task).label_names is not None


SCALES = {
    "cpu": Scale(
        name="cpu", model_dir="t5_table2_tiny", gin_files=(),
        # runs/cpu_ablation.gin trains 600 steps; 200 keep a sweep to about an hour per seed.
        bindings={"TRAIN_STEPS": 200, "train.eval_every": 100, "train.checkpoint_every": 100,
                  "DATA_SOURCE": "local:~/.cache/t2t/local_corpus"},
        # With EOS, targets hold the longest topic label (8 pieces), 99.9% of the descriptions
        # and 94% / 96% / 97% of the German / French / Romanian validation messages (the
        # embedded vocabulary is English's); inputs hold 99% of the English messages, and a lead
        # section's first 128 pieces (its first sentences). Each task adds about a fifth to a
        # run's time.
        downstream=(Downstream("wiki_topic", 150, {"inputs": 128, "targets": 16}, 300),
                    Downstream("wiki_description", 150, {"inputs": 128, "targets": 32}, 200))
        + tuple(Downstream(f"gettext_en{lang}", 150, {"inputs": 64, "targets": 64}, 200)
                for lang in ("de", "fr", "ro")),
        # The suite's files themselves (the task: source holds the same examples in one
        # in-memory list): each file is a unit, as in the runs committed in experiments/.
        finetune_source="~/.cache/t2t/eval_suite/{task}/{{split}}.jsonl"),
    "paper": Scale(
        name="paper", model_dir="t5_table2",
        gin_files=("runs/t5_paper_ablation.gin", "data/tfds_c4.gin"),
        # 512 targets hold any objective's targets at 512 inputs (50% corruption included).
        bindings={"TASK_FEATURE_LENGTHS": {"inputs": 512, "targets": 512}},
        # T5 fine-tunes each task for 2^18 steps (paper §3.1.2) and scores the validation split.
        downstream=tuple(Downstream(task, 2 ** 18, {"inputs": 512, "targets": 128})
                         for task in PAPER_TASKS)),
}


def current_scale() -> Scale:
    """The scale ``$T2T_SWEEP_SCALE`` names (default ``cpu``)."""
    name = os.environ.get(SCALE_ENV, "cpu")
    if name not in SCALES:
        raise ValueError(f"{SCALE_ENV}={name!r} is not a scale; use one of {sorted(SCALES)}")
    return SCALES[name]
