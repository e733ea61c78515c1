#!/usr/bin/env bash
# ELMo tiny vs BERT tiny: pretrain each on the same number of token positions of the embedded
# corpus, then the same frozen-feature classifier on the offline wiki_topic task.
# Usage: bash experiments/elmo/run.sh [STEPS]   (run dirs go to runs/elmo_experiment/)
set -euo pipefail
STEPS=${1:-300}
OUT=runs/elmo_experiment
HERE=experiments/elmo
mkdir -p "$OUT"

# 16 rows x 128 tokens per step for both models (ELMo: lm rows; BERT: [CLS] A [SEP] B [SEP] rows).
python -c "import sys; from t2t.training.elmo import main; sys.exit(main(sys.argv[1:]))" \
  --gin_file=experiments/elmo_tiny_lm.gin --gin.TRAIN_STEPS="$STEPS" \
  --gin.MODEL_DIR="'$OUT/elmo_tiny'" --gin.train_elmo.eval_every=100
t2t train --gin_file=experiments/bert_tiny_mlm_nsp.gin --gin.TRAIN_STEPS="$STEPS" \
  --gin.MODEL_DIR="'$OUT/bert_tiny'" --gin.train.eval_every=100 --gin.train.checkpoint_every="$STEPS"

for model in elmo_tiny bert_tiny; do
  python -c "import sys; from t2t.evaluation.features import main; sys.exit(main(sys.argv[1:]))" \
    --run_dir "$OUT/$model" --task wiki_topic --out "$HERE/$model.json"
done
python "$HERE/report.py" "$OUT" "$HERE"
