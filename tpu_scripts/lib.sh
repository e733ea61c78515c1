# shellcheck shell=bash
# Shared by the tpu_scripts: argument parsing, shell quoting, and `run`, which prints a command
# and runs it, or with --dry-run only prints it.
#
# Dry-run output is a shell script: one command per line, quoted so that it can be pasted into a
# shell (or parsed with Python's shlex.split); lines starting with '#' are notes. Without
# --dry-run, each command is echoed to stderr with a '+ ' prefix before it runs.
#
# gcloud flags used by these scripts, checked against `gcloud <command> --help` of Google Cloud
# SDK 528.0.0 and the Cloud TPU reference pages (cloud.google.com/sdk/gcloud/reference/compute/tpus):
#   tpu-vm create:            NAME --zone --version --accelerator-type --spot --preemptible
#   queued-resources create:  QR --zone --node-id --accelerator-type --runtime-version --spot
#                             --reserved --valid-until-duration; --best-effort only in `gcloud alpha`
#   queued-resources describe/delete: QR --zone; delete --force (deletes the node too)
#   tpu-vm ssh:               NAME --zone --worker (0, 1, ... or all) --command
#   tpu-vm scp:               SRC... DEST --zone --worker --recurse
#   tpu-vm delete:            NAME --zone (+ the gcloud-wide --quiet)
#   storage cp:               --recursive;  storage rsync: --recursive --exclude=REGEX (relative paths)
# TPU software version for v4 and older with JAX: tpu-ubuntu2204-base (cloud.google.com/tpu/docs/runtimes).

set -euo pipefail

T2T_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T2T_REPO_ROOT=$(cd "$T2T_SCRIPTS_DIR/.." && pwd)
PROG=$(basename "$0")

DRY_RUN=0
# Defaults from the environment, so a session can `export T2T_TPU_NAME=... T2T_TPU_ZONE=...` once.
NAME=${T2T_TPU_NAME:-}
ZONE=${T2T_TPU_ZONE:-}
PROJECT=${T2T_TPU_PROJECT:-}

# Paths on the TPU VM workers; relative ones are under the remote home directory.
REMOTE_DIR=t2t           # the t2t checkout
REMOTE_VENV=t2t-venv     # the virtual environment t2t is installed in
REMOTE_LOGS=t2t-logs     # RUN.log and RUN.pid of every launched run
REMOTE_ASSETS=t2t-assets # files copied from gs:// by setup.sh --gcs-asset

die() {
  echo "$PROG: error: $*" >&2
  echo >&2
  usage >&2
  exit 2
}

# quote_word WORD: WORD as one shell word: as is if it is safe, else in single quotes (as Python's
# shlex.quote) or, if it holds single quotes and nothing special, double quotes; an option's value
# is quoted after its '=' (--command='...'), for readability.
quote_word() {
  local a=$1 safe='^[A-Za-z0-9_./:=@%+,-]+$'
  if [[ -n $a && $a =~ $safe ]]; then
    printf '%s' "$a"
  elif [[ $a =~ ^(--[A-Za-z0-9-]+=)(.+)$ ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
    quote_word "${BASH_REMATCH[2]}"
  elif [[ $a == *\'* && $a != *[\"\$\`\\!]* ]]; then
    printf '"%s"' "$a" # {'inputs': 512} reads better as "{'inputs': 512}" than '{'\''inputs'\'': 512}'
  else
    printf "'%s'" "${a//\'/\'\\\'\'}"
  fi
}

# quote ARG...: the arguments as one line of shell words.
quote() {
  local sep=''
  while (($#)); do
    printf '%s' "$sep"
    quote_word "$1"
    sep=' '
    shift
  done
}

# run CMD ARG...: print the command; run it unless --dry-run.
run() {
  if ((DRY_RUN)); then
    printf '%s\n' "$(quote "$@")"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    "$@"
  fi
}

# run_shell 'PIPELINE': the same for a local shell pipeline, printed as written.
run_shell() {
  if ((DRY_RUN)); then
    printf '%s\n' "$1"
  else
    printf '+ %s\n' "$1" >&2
    bash -c "set -euo pipefail; $1"
  fi
}

note() { printf '# %s\n' "$*"; }

# split_args ARG...: ARGS=(the arguments with every --key=value before `--` split into --key value).
split_args() {
  ARGS=()
  local a
  while (($#)); do
    a=$1
    shift
    if [[ $a == -- ]]; then
      ARGS+=(-- "$@")
      break
    elif [[ $a == --*=* ]]; then
      ARGS+=("${a%%=*}" "${a#*=}")
    else
      ARGS+=("$a")
    fi
  done
}

# need OPTION [VALUE...]: fail unless OPTION is followed by a value.
need() {
  [[ $# -ge 2 && ( -z $2 || $2 != --* ) ]] || die "$1 needs a value"
  [[ -n $2 ]] || die "$1 needs a non-empty value"
}

# parse_common ARG...: options every script takes; sets SHIFT (0 if $1 is not one of them).
parse_common() {
  SHIFT=0
  case $1 in
    --dry-run) DRY_RUN=1; SHIFT=1 ;;
    -h | --help) usage; exit 0 ;;
  esac
}

# parse_args SHARED OWN ARG...: parse a script's arguments (after split_args) with SHARED
# (parse_tpu, or parse_common for scripts without a TPU) and then the script's OWN parser, each of
# which sets SHIFT to the number of words it took (0: not its option); an unknown word fails.
# Scripts that pass arguments on to t2t set T2T_ARGS=() first: the words after `--` go there.
parse_args() {
  local shared=$1 own=$2 hint="" passes=0
  # (An empty array reads as unset to ${T2T_ARGS+...}: ask declare.)
  if declare -p T2T_ARGS &>/dev/null; then passes=1 hint=" (t2t's own arguments go after --)"; fi
  shift 2
  split_args "$@"
  set -- ${ARGS[@]+"${ARGS[@]}"}
  while (($#)); do
    if [[ $1 == -- ]] && ((passes)); then
      shift
      T2T_ARGS=("$@")
      return 0
    fi
    "$shared" "$@"
    ((SHIFT)) || "$own" "$@"
    ((SHIFT)) || die "unknown argument '$1'$hint"
    shift "$SHIFT"
  done
}

# parse_tpu ARG...: parse_common plus --name, --zone and --project.
parse_tpu() {
  parse_common "$@"
  ((SHIFT)) && return 0
  case $1 in
    --name) need "$@"; NAME=$2; SHIFT=2 ;;
    --zone) need "$@"; ZONE=$2; SHIFT=2 ;;
    --project) need "$@"; PROJECT=$2; SHIFT=2 ;;
  esac
}

require_tpu() {
  [[ -n $NAME ]] || die "--name is required (or set T2T_TPU_NAME)"
  [[ -n $ZONE ]] || die "--zone is required (or set T2T_TPU_ZONE)"
  check_name --name "$NAME"
}

check_name() { # check_name OPTION VALUE: a name safe in file names and remote commands
  [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "$1 must be letters, digits, '.', '_' or '-', got '$2'"
}

# The gcloud-wide --project flag, if one was given.
project_flag() { [[ -z $PROJECT ]] || printf -- '--project=%s' "$PROJECT"; }

# tpu_ssh WORKER 'REMOTE COMMAND': run a shell command on one worker (0, 1, ...) or on all of them.
tpu_ssh() {
  local project
  project=$(project_flag)
  run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" ${project:+"$project"} \
    --worker="$1" --command="$2"
}

# tpu_scp WORKER SRC... DEST [--recurse]: gcloud compute tpus tpu-vm scp.
tpu_scp() {
  local worker=$1 project
  shift
  project=$(project_flag)
  run gcloud compute tpus tpu-vm scp "$@" --zone="$ZONE" ${project:+"$project"} --worker="$worker"
}

# remote_path PATH [SUFFIX]: PATH (+ SUFFIX) for a remote command, where relative paths are
# under the home directory: t2t -> ~/t2t, ~/t2t -> ~/t2t, /abs/x -> /abs/x; t2t-venv /bin/pip ->
# ~/t2t-venv/bin/pip. Paths are kept to characters that need no quoting, so `~` expands there.
remote_path() {
  local p=${1#\~/}
  [[ -n $p && $p != "~" ]] || die "a remote path must not be empty or '~'"
  [[ $p =~ ^[A-Za-z0-9_./+-]+$ ]] || die "remote path '$1' may only contain letters, digits and . _ / + -"
  [[ $p == /* ]] || p="~/$p"
  printf '%s%s' "$p" "${2:-}"
}

check_worker() {
  [[ $1 == all || $1 =~ ^[0-9]+$ ]] || die "--worker must be a worker number or 'all', got '$1'"
}
