#!/usr/bin/env bash
# Device calls on a lent H100/H200: the GPU training bench of both models with a profile of where
# the step time goes (with and without command buffers), unrolled layers, the kernel gradient's two
# forms, attention masked by row lengths, the attention kernels alone, and both models at twice the
# batch. One process per job, each under its own time limit, so that a failure or a timeout costs
# one row, not the run.
#   SRC=<tree to run> WHL=<wheels dir> OUT=<results dir> [JOBS="t5_base attention ..."] bash experiments/benchmarks/gpu_run.sh
#   SMOKE=1 ... : the same jobs at toy sizes (checks the script on a CPU).
# Results: $OUT/<job>.json and $OUT/log.txt. The device image has jax/flax/optax/orbax but not
# gin-config or tensorboardX: those travel as wheels.
set -u
SRC=${SRC:-.}; WHL=${WHL:-.whl}; OUT=${OUT:-/tmp/t2t_gpu}; SMOKE=${SMOKE:-}
SRC=$(cd "$SRC" && pwd); mkdir -p "$OUT"; T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/log.txt"
if [ -z "$SMOKE" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$WHL"/gin_config-*.whl "$WHL"/tensorboardx-*.whl || exit 1
  export PYTHONPATH=/tmp/site:$SRC
fi
export PYTHONUNBUFFERED=1
python3 -c "import jax, flax, optax, orbax.checkpoint; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/log.txt"

train=(t2t.bench.train --preset gpu ${SMOKE:+--smoke})
attention=(t2t.bench.attention --preset "$([ -n "$SMOKE" ] && echo smoke || echo gpu)")
job() {  # job NAME LIMIT_S [VAR=VALUE...] MODULE ARGS...: one bench under its own limit, if JOBS picks it
  local name=$1 limit=$2; shift 2
  [[ " ${JOBS:-$name} " == *" $name "* ]] || return 0
  (cd "$SRC" && timeout "$limit" env "$@" --out "$OUT/$name.json") 2>&1 | tee -a "$OUT/log.txt"
  echo "[$name: exit ${PIPESTATUS[0]}; $(( $(date +%s) - T0 )) s since the start]" | tee -a "$OUT/log.txt"
}
py=(python3 -m)
# The landed settings (scan, minimal remat, cuDNN attention), each profiled (traces stay on the machine).
job t5_base 130 "${py[@]}" "${train[@]}" --only t2t_t5_1_1_base_bf16 --profile /tmp/t2t_profile
job decoder_1b 130 "${py[@]}" "${train[@]}" --only t2t_decoder_1b_bf16 --profile /tmp/t2t_profile
# Without XLA's command buffers (CUDA graphs): every kernel's trace event then names the HLO
# instruction it ran, so the profile can say which pass and module each one belongs to.
nocb=(XLA_FLAGS=--xla_gpu_enable_command_buffer=)
job t5_base_nocb 120 "${nocb[@]}" "${py[@]}" "${train[@]}" --only t2t_t5_1_1_base_bf16 --profile /tmp/t2t_profile_nocb
job decoder_1b_nocb 120 "${nocb[@]}" "${py[@]}" "${train[@]}" --only t2t_decoder_1b_bf16 --profile /tmp/t2t_profile_nocb
# Layers unrolled instead of scanned: what do the scan's per-layer copies cost?
job t5_base_unrolled 120 "${py[@]}" "${train[@]}" --variant unrolled:scan_layers=False --only t2t_t5_1_1_base_bf16+unrolled
job decoder_1b_unrolled 120 "${py[@]}" "${train[@]}" --variant unrolled:scan_layers=False --only t2t_decoder_1b_bf16+unrolled
# The kernel gradient as x^T g (model_config.kernel_gradient; the default "auto" uses it on CPUs
# only, where it saves XLA a transposed copy per projection): does the GPU gain or lose?
job t5_base_inputs_first 120 "${py[@]}" "${train[@]}" --variant xtg:kernel_gradient=inputs_first --only t2t_t5_1_1_base_bf16,t2t_t5_1_1_base_bf16+xtg
job decoder_1b_inputs_first 120 "${py[@]}" "${train[@]}" --variant xtg:kernel_gradient=inputs_first --only t2t_decoder_1b_bf16,t2t_decoder_1b_bf16+xtg
# Unpacked rows masked by their lengths (model_config.one_example_per_row): cuDNN masks inside the
# kernel, and T5's relative bias and its gradient stay [1, h, q, k] instead of a [b, h, q, k] bias
# carrying the mask (about 11% of T5 base's step in the 2026-11-27 profile).
job t5_base_lengths 120 "${py[@]}" "${train[@]}" --variant lengths:one_example_per_row=True --only t2t_t5_1_1_base_bf16,t2t_t5_1_1_base_bf16+lengths
job decoder_1b_lengths 120 "${py[@]}" "${train[@]}" --variant lengths:one_example_per_row=True --only t2t_decoder_1b_bf16,t2t_decoder_1b_bf16+lengths
job attention 150 "${py[@]}" "${attention[@]}"
# Twice the batch: does a larger step amortise what is not matmul?
job t5_base_b256 90 "${py[@]}" "${train[@]}" --variant b256:batch_size=256 --only t2t_t5_1_1_base_bf16+b256
job decoder_1b_b32 90 "${py[@]}" "${train[@]}" --variant b32:batch_size=32 --only t2t_decoder_1b_bf16+b32
# The traces and compiled programs, for reading offline with `python -m t2t.bench.profile`.
tar czf "$OUT/profiles.tgz" -C /tmp $(cd /tmp && ls -d t2t_profile* 2>/dev/null); ls -la "$OUT" | tee -a "$OUT/log.txt"
