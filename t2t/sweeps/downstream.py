"""Downstream evaluation as a sweep's after-commands: fine-tune each pretraining run on a task, then
score the fine-tuned model, with the scores stored under the pretraining run.

This is T5's protocol (paper §3.1.3 and §3.1.4: pretrain, fine-tune every variant the same way,
evaluate), at whatever scale the run files set. ``finetune_then_eval`` returns two
`Trial.after` templates::

    after = finetune_then_eval("experiments/t5_table2/{trial}.gin", "wiki_topic", train_steps=200)
    # 1. {python} -m t2t.cli train --gin_file=experiments/t5_table2/{trial}.gin
    #        --gin_file=runs/finetune.gin --gin.INITIAL_CHECKPOINT_PATH={model_dir}
    #        --gin.MODEL_DIR={model_dir}/finetune_wiki_topic --gin.SEED={seed} --gin.TRAIN_STEPS=200 ...
    # 2. {python} -m t2t.cli eval --run_dir={model_dir}/finetune_wiki_topic --task=wiki_topic
    #        --rank_classification --metrics_dir={model_dir} ...

The evaluation appends ``{"split": "eval:wiki_topic", "accuracy": ...}`` to the pretraining run's
``eval_metrics.jsonl``, which the runner stores with the run's training metrics, so
``t2t sweep report`` shows downstream scores beside held-out loss.
"""

from __future__ import annotations

import shlex
from typing import Mapping, Sequence

from t2t.sweeps.commands import gin_literal


def _escape(text: str) -> str:
    """Literal text inside an after-command template (which is ``str.format``-ed per run)."""
    return text.replace("{", "{{").replace("}", "}}")


def finetune_then_eval(pretrain_gin: str, task: str, *, train_steps: int,
                       data_source: str | None = None,
                       feature_lengths: Mapping[str, int] | None = None,
                       batch_size: int | None = None,
                       rank_classification: bool = True,
                       max_examples: int | None = None,
                       bindings: Mapping[str, object] | None = None,
                       extra_gin_files: Sequence[str] = ()) -> tuple[str, str]:
    """The two after-command templates that fine-tune a finished run on ``task`` and evaluate it.

    Args:
      pretrain_gin: the trial's gin file, a template that may use ``{trial}``: the fine-tuning run
        starts from the same model and run settings, then runs/finetune.gin switches to the
        supervised objective and T5's constant learning rate.
      task: an evaluation task (t2t/evaluation/tasks.py); an offline-suite task reads its own
        JSON lines by default.
      train_steps: fine-tuning steps.
      data_source: fine-tuning data (default ``task:<task>``: the task's own training examples,
        in the text-to-text format that the evaluation scores; t2t/data/sources.py).
      feature_lengths: ``TASK_FEATURE_LENGTHS`` for fine-tuning (default: the trial's).
      batch_size: ``BATCH_SIZE`` for fine-tuning (default: the trial's).
      rank_classification: score every label (classification tasks) instead of generating.
      max_examples: evaluate on the first this many examples of the evaluation split.
      bindings: more ``--gin.K=V`` for the fine-tuning run.
      extra_gin_files: gin files the pretraining run added after ``pretrain_gin`` (a scale's
        overrides, t2t/sweeps/scales.py): the fine-tuning run takes the same model.
    """
    finetune_dir = "{model_dir}/finetune_" + task
    source = data_source or f"task:{task}"
    finetune_bindings: dict[str, object] = {"TRAIN_STEPS": train_steps, "DATA_SOURCE": source}
    if feature_lengths is not None:
        finetune_bindings["TASK_FEATURE_LENGTHS"] = dict(feature_lengths)
    if batch_size is not None:
        finetune_bindings["BATCH_SIZE"] = batch_size
    finetune_bindings.update(bindings or {})
    # The runner splits a template into words (shlex) before formatting each: quote every binding
    # as one word, and double its braces so that they survive str.format.
    gin_files = [pretrain_gin, *extra_gin_files, "runs/finetune.gin"]
    train = ["{python} -m t2t.cli train", *(f"--gin_file={f}" for f in gin_files),
             "--gin.INITIAL_CHECKPOINT_PATH={model_dir}", f"--gin.MODEL_DIR={finetune_dir}",
             "--gin.SEED={seed}"]
    train += [shlex.quote(f"--gin.{name}={_escape(gin_literal(value))}")
              for name, value in finetune_bindings.items()]
    evaluate = ["{python} -m t2t.cli eval", f"--run_dir={finetune_dir}", f"--task={task}",
                "--metrics_dir={model_dir}"]
    if rank_classification:
        evaluate.append("--rank_classification")
    if max_examples is not None:
        evaluate.append(f"--max_examples={max_examples}")
    return " ".join(train), " ".join(evaluate)
