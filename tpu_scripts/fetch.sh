#!/usr/bin/env bash
# Copy a run directory (and optionally its log) to this machine.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: fetch.sh --model-dir=DIR --dest=LOCAL_DIR [--name=NAME --zone=ZONE] [--run-name=RUN]

Copy the run directory DIR (config.gin, metrics.jsonl, tensorboard/, train.log, checkpoints/)
into LOCAL_DIR. A gs:// DIR is copied from Cloud Storage (no TPU needed, works after the TPU is
deleted or preempted); any other DIR is on worker 0's disk (relative paths are under its home)
and is copied with scp. With --run-name, worker 0's t2t-logs/RUN.log comes too.

  --model-dir=DIR    the run's MODEL_DIR                                            [required]
  --dest=LOCAL_DIR   local directory to copy into (created)                         [required]
  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM, needed unless DIR is gs:// and
                     there is no --run-name (defaults $T2T_TPU_NAME, ...)
  --run-name=RUN     also copy the log of the run launched as RUN
  --skip-checkpoints (gs:// only) leave out checkpoints/, which can be large
  --dry-run          print the commands instead of running them
USAGE
}

MODEL_DIR= DEST= RUN_NAME= SKIP_CKPT=0

own_option() {
  SHIFT=0
  case $1 in
    --model-dir) need "$@"; MODEL_DIR=$2; SHIFT=2 ;;
    --dest) need "$@"; DEST=$2; SHIFT=2 ;;
    --run-name) need "$@"; RUN_NAME=$2; SHIFT=2 ;;
    --skip-checkpoints) SKIP_CKPT=1; SHIFT=1 ;;
  esac
}
parse_args parse_tpu own_option "$@"

[[ -n $MODEL_DIR ]] || die "--model-dir is required"
[[ -n $DEST ]] || die "--dest is required"
[[ -z $RUN_NAME ]] || check_name --run-name "$RUN_NAME"
MODEL_DIR=${MODEL_DIR%/}
if [[ $MODEL_DIR != gs://* || -n $RUN_NAME ]]; then require_tpu; fi
((!SKIP_CKPT)) || [[ $MODEL_DIR == gs://* ]] || die "--skip-checkpoints needs a gs:// --model-dir"

run mkdir -p "$DEST"
if [[ $MODEL_DIR == gs://* ]]; then
  project=$(project_flag)
  if ((SKIP_CKPT)); then
    # Everything but checkpoints/: the files at the top and the other sub-directories.
    run gcloud storage rsync --recursive '--exclude=^checkpoints/' "$MODEL_DIR" "$DEST/${MODEL_DIR##*/}" ${project:+"$project"}
  else
    run gcloud storage cp --recursive "$MODEL_DIR" "$DEST" ${project:+"$project"}
  fi
else
  tpu_scp 0 --recurse "$NAME:${MODEL_DIR#\~/}" "$DEST"
fi
if [[ -n $RUN_NAME ]]; then
  tpu_scp 0 "$NAME:$REMOTE_LOGS/$RUN_NAME.log" "$DEST"
fi
