#!/usr/bin/env bash
# Create a TPU VM or pod slice, directly or through a queued resource.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: create.sh --name=NAME --zone=ZONE [options]

Create a TPU VM (v4-8: one host, 4 chips) or pod slice (v4-128: 16 hosts, 64 chips).

  --name=NAME              TPU VM name (default $T2T_TPU_NAME)                      [required]
  --zone=ZONE              zone, e.g. us-central2-b (default $T2T_TPU_ZONE)         [required]
  --project=PROJECT        Google Cloud project (default: gcloud's; or $T2T_TPU_PROJECT)
  --accelerator-type=TYPE  v4-8, v4-32, v4-128, ... (default v4-8)
  --version=VERSION        TPU software version (default tpu-ubuntu2204-base, the one for JAX on v4)
  --spot                   Spot capacity: cheaper, may be preempted at any time
  --preemptible            (direct create only) legacy preemptible TPU
  --queued                 request it as a queued resource (waits in a queue for capacity)
  --qr-name=QR             queued resource name (default NAME-qr)
  --reserved               (queued) use the project's reservation
  --best-effort            (queued) best-effort capacity; uses `gcloud alpha`
  --valid-until-duration=D (queued) give up if not provisioned within D, e.g. 6h
  --wait                   (queued) poll until the queued resource is ACTIVE (or FAILED)
  --poll-seconds=S         (queued) seconds between polls with --wait (default 60)
  --dry-run                print the gcloud commands instead of running them

Examples:
  create.sh --name=t5-base --zone=us-central2-b --accelerator-type=v4-8
  create.sh --name=t5-base-pod --zone=us-central2-b --accelerator-type=v4-128 --queued --spot --wait
USAGE
}

ACCELERATOR=v4-8
VERSION=tpu-ubuntu2204-base
QUEUED=0 QR_NAME= WAIT=0 POLL=60 VALID_UNTIL= CAPACITY=()

own_option() {
  SHIFT=0
  case $1 in
    --accelerator-type) need "$@"; ACCELERATOR=$2; SHIFT=2 ;;
    --version) need "$@"; VERSION=$2; SHIFT=2 ;;
    --spot | --preemptible | --reserved | --best-effort) CAPACITY+=("$1"); SHIFT=1 ;;
    --queued) QUEUED=1; SHIFT=1 ;;
    --qr-name) need "$@"; QR_NAME=$2; SHIFT=2 ;;
    --valid-until-duration) need "$@"; VALID_UNTIL=$2; SHIFT=2 ;;
    --wait) WAIT=1; SHIFT=1 ;;
    --poll-seconds) need "$@"; POLL=$2; SHIFT=2 ;;
  esac
}
parse_args parse_tpu own_option "$@"

require_tpu
[[ $ACCELERATOR =~ ^v[0-9a-z]+-[0-9]+$ ]] || die "--accelerator-type looks like v4-8, got '$ACCELERATOR'"
((${#CAPACITY[@]} <= 1)) || die "choose at most one of --spot, --preemptible, --reserved, --best-effort"
CAP=${CAPACITY[0]:-}
[[ $POLL =~ ^[0-9]+$ ]] || die "--poll-seconds must be a number of seconds"
project=$(project_flag)

if ((!QUEUED)); then
  [[ $CAP != --reserved && $CAP != --best-effort ]] || die "$CAP needs --queued"
  [[ -z $VALID_UNTIL && -z $QR_NAME ]] || die "--qr-name and --valid-until-duration need --queued"
  ((!WAIT)) || die "--wait needs --queued (a direct create already waits until the TPU is ready)"
  run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" ${project:+"$project"} \
    --accelerator-type="$ACCELERATOR" --version="$VERSION" ${CAP:+"$CAP"}
  exit 0
fi

[[ $CAP != --preemptible ]] || die "--preemptible is not available for queued resources; use --spot"
QR_NAME=${QR_NAME:-$NAME-qr}
check_name --qr-name "$QR_NAME"
gcloud_track=()
[[ $CAP != --best-effort ]] || gcloud_track=(alpha)
run gcloud ${gcloud_track[@]+"${gcloud_track[@]}"} compute tpus queued-resources create "$QR_NAME" \
  --zone="$ZONE" ${project:+"$project"} --node-id="$NAME" --accelerator-type="$ACCELERATOR" \
  --runtime-version="$VERSION" ${CAP:+"$CAP"} ${VALID_UNTIL:+"--valid-until-duration=$VALID_UNTIL"}

((WAIT)) || exit 0
describe=(gcloud compute tpus queued-resources describe "$QR_NAME" --zone="$ZONE"
  ${project:+"$project"} '--format=value(state.state)')
if ((DRY_RUN)); then
  note "repeated every ${POLL}s until the state is ACTIVE (fails on FAILED or SUSPENDED):"
  run "${describe[@]}"
  exit 0
fi
while :; do
  state=$(run "${describe[@]}")
  echo "$PROG: queued resource $QR_NAME is $state" >&2
  case $state in
    ACTIVE) exit 0 ;;
    FAILED | SUSPENDED) echo "$PROG: error: queued resource $QR_NAME is $state" >&2; exit 1 ;;
  esac
  sleep "$POLL"
done
