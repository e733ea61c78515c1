#!/usr/bin/env bash
# Submit t2t.sbatch: multi-node GPU training under SLURM.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

usage() {
  cat <<'USAGE'
Usage: submit.sh --nodes=N [options] [-- T2T_TRAIN_ARGS...]

Submit tpu_scripts/slurm/t2t.sbatch with sbatch: N nodes, one task (one JAX process) per node,
each using all of its node's GPUs; the tasks run `t2t train T2T_TRAIN_ARGS...` with
--coordinator_address (first node), --num_processes (N) and --process_id (SLURM_PROCID).
With --dry-run, prints the sbatch command and the srun line the job will run (FIRST_NODE stands
for the first host of the allocation, known only when the job starts).

  --nodes=N           number of nodes                                             [required]
  --gpus-per-node=G   GPUs per node (default 8)
  --time=T            time limit, e.g. 24:00:00 (default: the script's, 24 h)
  --partition=P       SLURM partition
  --account=A         SLURM account
  --job-name=J        job name (default t2t); the log is J-JOBID.out
  --venv=DIR          virtual environment with t2t and 'jax[cuda12]' (default: t2t on PATH)
  --workdir=DIR       directory the job runs in (default: this t2t checkout)
  --port=P            coordinator port (default 12345)
  --dry-run           print the commands instead of submitting
  --                  everything after it goes to `t2t train`

Example:
  submit.sh --nodes=4 --partition=gpu --venv=$HOME/t2t-venv -- \
    --gin_file=models/t5_1_1/base.gin --gin_file=runs/pretrain.gin \
    --gin_file=objectives/span_corruption.gin --gin.BATCH_SIZE=256 --gin.TRAIN_STEPS=100000
USAGE
}

SBATCH_SCRIPT=$T2T_SCRIPTS_DIR/slurm/t2t.sbatch
NODES= GPUS=8 TIME= PARTITION= ACCOUNT= JOB_NAME=t2t VENV= WORKDIR=$T2T_REPO_ROOT PORT=12345 T2T_ARGS=()

own_option() {
  SHIFT=0
  case $1 in
    --nodes) need "$@"; NODES=$2; SHIFT=2 ;;
    --gpus-per-node) need "$@"; GPUS=$2; SHIFT=2 ;;
    --time) need "$@"; TIME=$2; SHIFT=2 ;;
    --partition) need "$@"; PARTITION=$2; SHIFT=2 ;;
    --account) need "$@"; ACCOUNT=$2; SHIFT=2 ;;
    --job-name) need "$@"; JOB_NAME=$2; SHIFT=2 ;;
    --venv) need "$@"; VENV=$2; SHIFT=2 ;;
    --workdir) need "$@"; WORKDIR=$2; SHIFT=2 ;;
    --port) need "$@"; PORT=$2; SHIFT=2 ;;
  esac
}
parse_args parse_common own_option "$@"

for arg in ${T2T_ARGS[@]+"${T2T_ARGS[@]}"}; do
  [[ $arg != --dry-run ]] || die "--dry-run must come before -- (after it, it would go to t2t train)"
done
[[ -n $NODES ]] || die "--nodes is required"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive number, got '$NODES'"
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node must be a positive number, got '$GPUS'"
[[ $PORT =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
check_name --job-name "$JOB_NAME"
[[ $VENV != *,* && $WORKDIR != *,* ]] || die "--venv and --workdir must not contain commas (sbatch --export)"

exports=ALL,T2T_COORDINATOR_PORT=$PORT
[[ -z $VENV ]] || exports+=,T2T_VENV=$VENV
sbatch_cmd=(sbatch --job-name="$JOB_NAME" --nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS")
[[ -z $TIME ]] || sbatch_cmd+=(--time="$TIME")
[[ -z $PARTITION ]] || sbatch_cmd+=(--partition="$PARTITION")
[[ -z $ACCOUNT ]] || sbatch_cmd+=(--account="$ACCOUNT")
sbatch_cmd+=(--chdir="$WORKDIR" --export="$exports" "$SBATCH_SCRIPT" ${T2T_ARGS[@]+"${T2T_ARGS[@]}"})

run "${sbatch_cmd[@]}"
if ((DRY_RUN)); then
  note "then each of the $NODES tasks runs (FIRST_NODE: the first host of the allocation):"
  env T2T_DRY_RUN=1 SLURM_NTASKS="$NODES" SLURM_JOB_NODELIST=FIRST_NODE T2T_COORDINATOR_HOST=FIRST_NODE \
    T2T_COORDINATOR_PORT="$PORT" T2T_VENV="$VENV" T2T_WORKDIR="$WORKDIR" \
    bash "$SBATCH_SCRIPT" ${T2T_ARGS[@]+"${T2T_ARGS[@]}"}
fi
