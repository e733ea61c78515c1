#!/usr/bin/env bash
# The distillation experiment (see README.md): a 12-layer GPT-2-style teacher, then 6-layer students
# from scratch and distilled, at equal steps, data and optimizer. Runs one job at a time.
#
#   RUNS=runs/distillation bash experiments/distillation/run.sh
#   python experiments/distillation/report.py runs/distillation
set -euo pipefail
RUNS=${RUNS:-runs/distillation}
STEPS=${STEPS:-200}
SEEDS=${SEEDS:-"0 1"}
COMMON=(--gin.TASK_FEATURE_LENGTHS="{'targets': 64}")
STUDENT=("${COMMON[@]}" --gin.TRAIN_STEPS="$STEPS" --gin.train.eval_every=25
         --gin.train.checkpoint_every="$STEPS")

if [ ! -d "$RUNS/teacher/checkpoints" ]; then
  t2t train --gin_file=experiments/distillation/gpt_12l.gin "${COMMON[@]}" --gin.TRAIN_STEPS=400 \
    --gin.train.eval_every=100 --gin.train.checkpoint_every=400 --gin.MODEL_DIR="'$RUNS/teacher'"
fi
for seed in $SEEDS; do
  t2t train --gin_file=experiments/distillation/gpt_6l.gin "${STUDENT[@]}" --gin.SEED="$seed" \
    --gin.MODEL_DIR="'$RUNS/scratch_seed$seed'"
  # `t2t distill` once the command is wired into t2t/cli.py.
  python -m t2t.training.distillation --gin_file=experiments/distillation/gpt_6l_distilled.gin \
    "${STUDENT[@]}" --gin.SEED="$seed" --gin.TEACHER="'$RUNS/teacher'" \
    --gin.MODEL_DIR="'$RUNS/distilled_seed$seed'"
done
if [ -n "${INIT_ONLY_SEEDS:-}" ]; then  # ablation: the teacher's layers, the usual loss only
  for seed in $INIT_ONLY_SEEDS; do
    python -m t2t.training.distillation --gin_file=experiments/distillation/gpt_6l_distilled.gin \
      "${STUDENT[@]}" --gin.SEED="$seed" --gin.TEACHER="'$RUNS/teacher'" \
      --gin.distill.alpha_soft=0 --gin.distill.alpha_cos=0 --gin.distill.alpha_hard=1 \
      --gin.MODEL_DIR="'$RUNS/init_only_seed$seed'"
  done
fi
