#!/usr/bin/env bash
# The prepared GPU run: one command that needs no attention while it runs (about 9 minutes on one
# H100 is its budget). Everything goes to one folder: its argument, else $OUT, else ./gpu-run.
#
#   bash tools/gpu_run.sh [OUT]
#   DSNET_GPU_RUN=dry bash tools/gpu_run.sh OUT    # the CPU dry run the tests make: tiny settings
#
# Steps: the environment; the tests that need CUDA (they skip on a CPU); `dsnet bench` at 96 and
# 224 px, plain way vs fast path with --compile; a few steps forced to fp16 with the grad scaler (the
# T4 path); the full profile, timed; its best weights in fp16, evaluated as they would ship
# (tools/ship_pretrained.py --to, which also says whether they beat the shipped ones); the model
# exported and checked on the GPU. A failed step is reported and the next one runs; the exit status
# is the number of failed steps. Afterwards: commit OUT/benchmarks/*.json and, if the weights
# improved, run tools/ship_pretrained.py on OUT/runs/full without --to.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DSNET_GPU_RUN_ACTIVE:-}" ]; then   # the tests below must never start this script again
    echo "tools/gpu_run.sh: already running (DSNET_GPU_RUN_ACTIVE is set); not starting it again" >&2
    exit 2
fi
export DSNET_GPU_RUN_ACTIVE=1
out=$(realpath -m "${1:-${OUT:-gpu-run}}")
mkdir -p "$out/benchmarks"
if [ "${DSNET_GPU_RUN:-}" = dry ]; then
    device=cpu profile=smoke sizes="64" steps=2 warmup=1 batch=8 compile="" fp16_steps=2 name=dry-run-cpu
    proxy_pairs=4 fp16_batch=2
else
    device=cuda profile=full sizes="96 224" steps=20 warmup=5 batch=64 compile="--compile" fp16_steps=20
    name=$(python -c "import torch; print(torch.cuda.get_device_name().lower().replace(' ', '-'))")
    proxy_pairs=64 fp16_batch=16
fi
failed=0 start=$SECONDS
step() {  # step NAME COMMAND...: run it, log it, count a failure
    local label=$1; shift
    printf '\n=== %s (%ds)\n' "$label" $((SECONDS - start)) | tee -a "$out/log.txt"
    "$@" 2>&1 | tee -a "$out/log.txt"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { failed=$((failed + 1)); echo "FAILED: $label (exit $rc)" | tee -a "$out/log.txt"; }
}
timed_train() {
    local t0=$SECONDS
    python -m dsnet train --profile "$profile" --device "$device" --out-dir "$out/runs/$profile" --overwrite
    local rc=$?
    echo "{\"profile\": \"$profile\", \"wall_seconds\": $((SECONDS - t0))}" > "$out/train_wall.json"
    return $rc
}

step "environment" python tools/gpu_checks.py env
command -v nvidia-smi >/dev/null && step "nvidia-smi" nvidia-smi
step "tests that need CUDA" python -m pytest -q -rs -p no:cacheprovider -p no:nbval -o addopts="" -k "cuda or gpu" \
    --ignore=tests/test_gpu_run.py --ignore=tests/test_colab.py --ignore=tests/test_chapters.py tests
step "bench: plain way vs fast path" python -m dsnet bench --sizes $sizes --steps $steps --warmup $warmup \
    --batch-size $batch --device $device $compile --json "$out/benchmarks/$name.json"
step "fp16 with the grad scaler (the T4 path)" python tools/gpu_checks.py fp16 --device $device --steps $fp16_steps \
    --batch-size $fp16_batch
step "train: --profile $profile" timed_train
step "the fp16 weights as shipped" python tools/ship_pretrained.py "$out/runs/$profile" --to "$out/shipped" \
    --command "dsnet train --profile $profile" --machine "$name" --note "tools/gpu_run.sh" \
    --proxy-pairs $proxy_pairs
step "export, checked on $device" python tools/gpu_checks.py export --checkpoint "$out/runs/$profile/best.pt" \
    --device $device --out "$out"
printf '\n=== done in %ds, %d failed step(s); outputs in %s\n' $((SECONDS - start)) "$failed" "$out" | tee -a "$out/log.txt"
exit "$failed"
