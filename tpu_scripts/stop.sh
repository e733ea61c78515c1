#!/usr/bin/env bash
# Stop a run started with launch.sh on every worker (frees the TPU for the next launch).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: stop.sh --name=NAME --zone=ZONE --run-name=RUN [--worker=all]

Send SIGTERM to the process in t2t-logs/RUN.pid on every worker and wait up to 60 s for it to
exit. The run keeps its checkpoints: launching it again with the same MODEL_DIR resumes.

  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM (defaults $T2T_TPU_NAME, ...)
  --run-name=RUN   the run, as given to launch.sh                                  [required]
  --worker=W       all (default) or one worker number
  --dry-run        print the gcloud command instead of running it
USAGE
}

RUN_NAME= WORKER=all

own_option() {
  SHIFT=0
  case $1 in
    --run-name) need "$@"; RUN_NAME=$2; SHIFT=2 ;;
    --worker) need "$@"; WORKER=$2; SHIFT=2 ;;
  esac
}
parse_args parse_tpu own_option "$@"

require_tpu
[[ -n $RUN_NAME ]] || die "--run-name is required"
check_name --run-name "$RUN_NAME"
check_worker "$WORKER"
pid=$(remote_path "$REMOTE_LOGS" "/$RUN_NAME.pid")
tpu_ssh "$WORKER" "if [ -f $pid ]; then p=\$(cat $pid); kill -TERM \"\$p\" 2>/dev/null && for i in \$(seq 60); do kill -0 \"\$p\" 2>/dev/null || break; sleep 1; done; rm -f $pid; echo \"stopped t2t run $RUN_NAME on \$(hostname)\"; else echo \"no t2t run $RUN_NAME on \$(hostname)\"; fi"
