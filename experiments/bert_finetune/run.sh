#!/usr/bin/env bash
# Pretrain tiny BERT (MLM + NSP) and tiny RoBERTa (MLM) on the local corpus, fine-tune each and a
# from-scratch baseline on topic / pairs / tagging, evaluate on validation. One run at a time.
# Needs: t2t data build-local, t2t data build-eval, python -m t2t.data.build_encoder_tasks.
# Usage: bash experiments/bert_finetune/run.sh [RUNS_DIR]   (from the repository root)
set -euo pipefail
RUNS=${1:-runs/bert_finetune}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-200}
FINETUNE_STEPS=${FINETUNE_STEPS:-100}
mkdir -p "$RUNS"

pretrain() {  # name experiment [extra flags]
  [ -d "$RUNS/$1/checkpoints/$PRETRAIN_STEPS" ] || t2t train --gin_file="experiments/$2.gin" --gin_file=data/local.gin \
    --gin.TRAIN_STEPS="$PRETRAIN_STEPS" --gin.MODEL_DIR="'$RUNS/$1'" "${@:3}"
}
pretrain bert_pre bert_tiny_mlm_nsp
pretrain roberta_pre roberta_tiny_mlm

for task in topic pairs tagging; do
  for start in bert roberta scratch; do
    run="$RUNS/${start}_$task"
    case $start in
      bert) gin="experiments/bert_tasks/$task.gin"; init="'$RUNS/bert_pre'" ;;
      roberta) gin="experiments/bert_tasks/roberta_$task.gin"; init="'$RUNS/roberta_pre'" ;;
      scratch) gin="experiments/bert_tasks/$task.gin"; init=None ;;
    esac
    [ -d "$run/checkpoints/$FINETUNE_STEPS" ] || t2t train --gin_file="$gin" \
      --gin.INITIAL_CHECKPOINT_PATH="$init" --gin.TRAIN_STEPS="$FINETUNE_STEPS" --gin.MODEL_DIR="'$run'" \
      --gin.BATCH_SIZE=16 --gin.TASK_FEATURE_LENGTHS="{'inputs': 64}" --gin.warmup_cosine_schedule.warmup_steps=10
    python -m t2t.evaluation.encoder_eval --run_dir "$run" --split validation
  done
done
python experiments/bert_finetune/table.py "$RUNS" > experiments/bert_finetune/results.md
