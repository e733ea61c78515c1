#!/usr/bin/env bash
# Delete a TPU VM or pod slice (or its queued resource).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: delete.sh --name=NAME --zone=ZONE [--queued [--qr-name=QR]]

Delete the TPU VM NAME without asking (gcloud --quiet). Whatever is only on its disks is lost:
fetch.sh first unless MODEL_DIR is on gs://. For a TPU made with create.sh --queued, give
--queued: the queued resource is deleted with its node (--force).

  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM (defaults $T2T_TPU_NAME, ...)
  --queued          delete the queued resource QR and its node
  --qr-name=QR      the queued resource (default NAME-qr, as create.sh)
  --async           return without waiting for the deletion to finish
  --dry-run         print the gcloud command instead of running it
USAGE
}

QUEUED=0 QR_NAME= ASYNC=

own_option() {
  SHIFT=0
  case $1 in
    --queued) QUEUED=1; SHIFT=1 ;;
    --qr-name) need "$@"; QR_NAME=$2; SHIFT=2 ;;
    --async) ASYNC=--async; SHIFT=1 ;;
  esac
}
parse_args parse_tpu own_option "$@"

require_tpu
project=$(project_flag)
if ((QUEUED)); then
  QR_NAME=${QR_NAME:-$NAME-qr}
  check_name --qr-name "$QR_NAME"
  run gcloud compute tpus queued-resources delete "$QR_NAME" --zone="$ZONE" ${project:+"$project"} \
    --force ${ASYNC:+"$ASYNC"} --quiet
else
  [[ -z $QR_NAME ]] || die "--qr-name needs --queued"
  run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" ${project:+"$project"} \
    ${ASYNC:+"$ASYNC"} --quiet
fi
