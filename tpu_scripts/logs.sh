#!/usr/bin/env bash
# Stream the log of a run started with launch.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: logs.sh --name=NAME --zone=ZONE --run-name=RUN [--worker=0] [--lines=100] [--no-follow]

Print the last lines of t2t-logs/RUN.log on a worker and follow it (tail -F; Ctrl-C stops
watching, not the run). Worker 0 writes the metrics; --worker=all streams every worker's log
(interleaved), which is where an error on one host shows up.

  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM (defaults $T2T_TPU_NAME, ...)
  --run-name=RUN   the run, as given to launch.sh                                  [required]
  --worker=W       0 (default), another worker number, or all
  --lines=N        lines of history to print first (default 100)
  --no-follow      print and exit
  --dry-run        print the gcloud command instead of running it
USAGE
}

RUN_NAME= WORKER=0 LINES=100 FOLLOW=1

own_option() {
  SHIFT=0
  case $1 in
    --run-name) need "$@"; RUN_NAME=$2; SHIFT=2 ;;
    --worker) need "$@"; WORKER=$2; SHIFT=2 ;;
    --lines) need "$@"; LINES=$2; SHIFT=2 ;;
    --no-follow) FOLLOW=0; SHIFT=1 ;;
  esac
}
parse_args parse_tpu own_option "$@"

require_tpu
[[ -n $RUN_NAME ]] || die "--run-name is required"
check_name --run-name "$RUN_NAME"
check_worker "$WORKER"
[[ $LINES =~ ^[0-9]+$ ]] || die "--lines must be a number, got '$LINES'"
follow=
((!FOLLOW)) || follow=' -F'
tpu_ssh "$WORKER" "tail -n $LINES$follow $(remote_path "$REMOTE_LOGS" "/$RUN_NAME.log")"
