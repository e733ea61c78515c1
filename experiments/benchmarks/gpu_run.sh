#!/usr/bin/env bash
# One device call: `t2t bench train --preset gpu` on a lent H100/H200, one system per process so that a
# failure or a timeout costs one row, not the run. Results: $OUT/<system>.json and $OUT/log.txt.
#   SRC=<tree to run> WHL=<wheels dir> OUT=<results dir> bash experiments/benchmarks/gpu_run.sh
# The device image has jax/flax/optax/orbax but not gin-config or tensorboardX: those travel as wheels.
set -u
SRC=${SRC:-.}; WHL=${WHL:-.whl}; OUT=${OUT:-/tmp/t2t_gpu}; PER_SYSTEM_S=${PER_SYSTEM_S:-140}
SRC=$(cd "$SRC" && pwd); mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/log.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  "$WHL"/gin_config-*.whl "$WHL"/tensorboardx-*.whl || exit 1
export PYTHONPATH=/tmp/site:$SRC PYTHONUNBUFFERED=1
python3 -c "import jax, flax, optax, orbax.checkpoint; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/log.txt"
# The fused (cuDNN) attention kernel of the preset, then the explicit-softmax einsum kernel beside it.
# --profile: each JSON also says where the step time went (the traces stay on the device machine).
for system in t2t_t5_1_1_base_bf16 t2t_decoder_1b_bf16 t2t_t5_1_1_base_bf16+einsum t2t_decoder_1b_bf16+einsum; do
  (cd "$SRC" && timeout "$PER_SYSTEM_S" python3 -m t2t.bench.train --preset gpu --only "$system" \
     --variant einsum:attention_kernel=einsum --profile /tmp/t2t_profile \
     --out "$OUT/${system/+/_}.json") 2>&1 | tee -a "$OUT/log.txt"
done
