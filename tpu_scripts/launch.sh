#!/usr/bin/env bash
# Start `t2t train` on every worker of a TPU VM, in the background, logging to t2t-logs/RUN.log.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: launch.sh --name=NAME --zone=ZONE --run-name=RUN [options] [-- T2T_TRAIN_ARGS...]

Start `t2t train T2T_TRAIN_ARGS...` on every worker at once (a pod slice needs one process per
host; they find each other through the TPU metadata: no coordinator flags). Each worker runs it
with nohup, appending to t2t-logs/RUN.log and writing its pid to t2t-logs/RUN.pid, so the run
survives the ssh session; watch it with logs.sh and stop it with stop.sh. Refuses to start if
RUN is still running on a worker. Relaunching after a preemption with the same arguments (the
same --gin.MODEL_DIR) resumes from the latest checkpoint.

  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM (defaults $T2T_TPU_NAME, ...)
  --run-name=RUN     names the log and pid files                                    [required]
  --env=KEY=VALUE    environment variable for t2t, e.g. TFDS_DATA_DIR=gs://... (repeatable)
  --worker=W         all (default; what a pod slice needs) or one worker number
  --remote-dir=DIR   the t2t checkout on the workers (default t2t, as setup.sh)
  --venv=DIR         the virtual environment on the workers (default t2t-venv, as setup.sh)
  --dry-run          print the gcloud command instead of running it
  --                 everything after it goes to `t2t train` (gin files and bindings)

Example:
  launch.sh --name=t5-base --zone=us-central2-b --run-name=base -- \
    --gin_file=models/t5_1_1/base.gin --gin_file=runs/pretrain.gin \
    --gin_file=objectives/span_corruption.gin --gin_file=data/tfds_c4.gin \
    --gin.MODEL_DIR=gs://my-bucket/t5_1_1_base --gin.BATCH_SIZE=128 --gin.TRAIN_STEPS=524288
USAGE
}

RUN_NAME= WORKER=all ENVS=(PYTHONUNBUFFERED=1) T2T_ARGS=()

own_option() {
  SHIFT=0
  case $1 in
    --run-name) need "$@"; RUN_NAME=$2; SHIFT=2 ;;
    --env) need "$@"; ENVS+=("$2"); SHIFT=2 ;;
    --worker) need "$@"; WORKER=$2; SHIFT=2 ;;
    --remote-dir) need "$@"; REMOTE_DIR=$2; SHIFT=2 ;;
    --venv) need "$@"; REMOTE_VENV=$2; SHIFT=2 ;;
  esac
}
parse_args parse_tpu own_option "$@"

for arg in ${T2T_ARGS[@]+"${T2T_ARGS[@]}"}; do
  [[ $arg != --dry-run ]] || die "--dry-run must come before -- (after it, it would go to t2t train)"
done
require_tpu
[[ -n $RUN_NAME ]] || die "--run-name is required"
check_name --run-name "$RUN_NAME"
check_worker "$WORKER"
for kv in "${ENVS[@]}"; do
  [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env must be KEY=VALUE, got '$kv'"
done

src=$(remote_path "$REMOTE_DIR")
t2t=$(remote_path "$REMOTE_VENV" /bin/t2t)
logs=$(remote_path "$REMOTE_LOGS")
log=$(remote_path "$REMOTE_LOGS" "/$RUN_NAME.log")
pid=$(remote_path "$REMOTE_LOGS" "/$RUN_NAME.pid")
train="env $(quote "${ENVS[@]}") $t2t train${T2T_ARGS[*]+ $(quote "${T2T_ARGS[@]}")}"

tpu_ssh "$WORKER" "cd $src && mkdir -p $logs && if [ -f $pid ] && kill -0 \"\$(cat $pid)\" 2>/dev/null; then echo \"t2t run $RUN_NAME is still running on \$(hostname); stop it with stop.sh\" >&2; exit 1; fi && { nohup $train >> $log 2>&1 < /dev/null & echo \$! > $pid; } && echo \"started t2t run $RUN_NAME on \$(hostname): pid \$(cat $pid), log $REMOTE_LOGS/$RUN_NAME.log\""
