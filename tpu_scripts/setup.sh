#!/usr/bin/env bash
# Install t2t on every worker of a TPU VM: copy the source, make a virtual environment, pip install.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: setup.sh --name=NAME --zone=ZONE [--source=DIR | --git-url=URL [--git-ref=REF]] [options]

Install t2t on every worker of the TPU VM or pod slice NAME: copy the source (this checkout by
default: its tracked and untracked-but-not-ignored files, as a tarball over scp; or a git clone on
each worker), create a virtual environment with Python >= 3.11 (the TPU image has 3.10; python3.11
comes from apt), then `pip install -e '.[EXTRAS]' 'jax[tpu]'`, and check that JAX sees the TPU.

  --name=NAME, --zone=ZONE, --project=PROJECT   the TPU VM (defaults $T2T_TPU_NAME, ...)
  --source=DIR        local t2t checkout to copy (default: the one holding this script)
  --git-url=URL       clone this repository on every worker instead of copying --source
  --git-ref=REF       branch, tag or commit to check out (default origin/HEAD)
  --remote-dir=DIR    where the source goes on the workers (default t2t, under the home directory)
  --venv=DIR          virtual environment on the workers (default t2t-venv, under the home directory)
  --python=PYTHON     interpreter for the venv (default python3.11; apt-installed if missing)
  --extras=LIST       pyproject extras, comma-separated (e.g. tfds, for gin_configs/data/tfds_c4.gin)
  --pip=PACKAGE       one more package to install, e.g. gcsfs (repeatable)
  --gcs-asset=URI     copy a gs:// file to t2t-assets/ on every worker, e.g. a SentencePiece
                      model for --gin.VOCABULARY (repeatable)
  --no-check          skip the final `jax.device_count()` check on all workers
  --dry-run           print the commands instead of running them

Example:
  setup.sh --name=t5-base --zone=us-central2-b --extras=tfds --pip=gcsfs \
    --gcs-asset=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model
USAGE
}

SOURCE= GIT_URL= GIT_REF=origin/HEAD PYTHON=python3.11 EXTRAS= CHECK=1 PIP=() ASSETS=()

own_option() {
  SHIFT=0
  case $1 in
    --source) need "$@"; SOURCE=$2; SHIFT=2 ;;
    --git-url) need "$@"; GIT_URL=$2; SHIFT=2 ;;
    --git-ref) need "$@"; GIT_REF=$2; SHIFT=2 ;;
    --remote-dir) need "$@"; REMOTE_DIR=$2; SHIFT=2 ;;
    --venv) need "$@"; REMOTE_VENV=$2; SHIFT=2 ;;
    --python) need "$@"; PYTHON=$2; SHIFT=2 ;;
    --extras) need "$@"; EXTRAS=$2; SHIFT=2 ;;
    --pip) need "$@"; PIP+=("$2"); SHIFT=2 ;;
    --gcs-asset) need "$@"; ASSETS+=("$2"); SHIFT=2 ;;
    --no-check) CHECK=0; SHIFT=1 ;;
  esac
}
parse_args parse_tpu own_option "$@"

require_tpu
[[ -z $SOURCE || -z $GIT_URL ]] || die "give --source or --git-url, not both"
[[ $PYTHON =~ ^python3\.[0-9]+$ ]] || die "--python must look like python3.11, got '$PYTHON'"
[[ -z $EXTRAS || $EXTRAS =~ ^[A-Za-z0-9_,-]+$ ]] || die "--extras must be a comma-separated list of names"
for uri in ${ASSETS[@]+"${ASSETS[@]}"}; do
  [[ $uri == gs://* ]] || die "--gcs-asset must be a gs:// URI, got '$uri'"
done
src=$(remote_path "$REMOTE_DIR")
pip=$(remote_path "$REMOTE_VENV" /bin/pip)
python=$(remote_path "$REMOTE_VENV" /bin/python)
venv=$(remote_path "$REMOTE_VENV")
assets=$(remote_path "$REMOTE_ASSETS")

# 1. The source on every worker.
if [[ -n $GIT_URL ]]; then
  note "clone $GIT_URL on every worker"
  tpu_ssh all "if [ ! -d $(remote_path "$REMOTE_DIR" /.git) ]; then git clone --quiet $(quote "$GIT_URL") $src; fi && git -C $src fetch --quiet origin && git -C $src checkout --quiet $(quote "$GIT_REF")"
else
  SOURCE=${SOURCE:-$T2T_REPO_ROOT}
  [[ -f $SOURCE/pyproject.toml ]] || die "--source=$SOURCE is not a t2t checkout (no pyproject.toml)"
  [[ -d $SOURCE/.git ]] || die "--source=$SOURCE is not a git checkout; use --git-url instead"
  tarball=${TMPDIR:-/tmp}/t2t-src-$NAME.tar.gz
  note "pack $SOURCE (tracked and untracked, not ignored, files) and copy it to every worker"
  run_shell "git -C $(quote "$SOURCE") ls-files -z --cached --others --exclude-standard | tar -C $(quote "$SOURCE") --null -T - -czf $(quote "$tarball")"
  tpu_scp all "$tarball" "$NAME:t2t-src.tar.gz"
  tpu_ssh all "mkdir -p $src && tar -xzf ~/t2t-src.tar.gz -C $src && rm ~/t2t-src.tar.gz"
fi

# 2. Python, the virtual environment and the packages.
target=.
[[ -z $EXTRAS ]] || target=".[$EXTRAS]"
note "install t2t in a $PYTHON virtual environment on every worker"
tpu_ssh all "if ! $PYTHON -c \"import ensurepip\" 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq $PYTHON $PYTHON-venv; fi && $PYTHON -m venv $venv && $pip install -q --upgrade pip && cd $src && $pip install -q -e $(quote "$target") 'jax[tpu]'${PIP[*]+ $(quote "${PIP[@]}")}"

# 3. Files from Cloud Storage (a vocabulary, ...).
if ((${#ASSETS[@]})); then
  note "copy ${#ASSETS[@]} file(s) from Cloud Storage to $REMOTE_ASSETS/ on every worker"
  tpu_ssh all "mkdir -p $assets && gcloud storage cp $(quote "${ASSETS[@]}") $(remote_path "$REMOTE_ASSETS" /)"
fi

# 4. Every worker sees the whole slice (all workers must run this at the same time).
if ((CHECK)); then
  note "check: every worker prints its process index, local and global device counts"
  tpu_ssh all "$python -c \"import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())\""
fi
