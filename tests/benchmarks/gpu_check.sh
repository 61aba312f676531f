#!/usr/bin/env bash
# Issue 15's GPU figures in one device call (the machine has Python 3.12, JAX and PyTorch,
# but neither Keras, TensorFlow nor Ray, and no network).
#
#   bash tests/benchmarks/gpu_check.sh prepare    # here, once per checkout: wheels into .whl/
#   bash tests/benchmarks/gpu_check.sh run        # on the GPU machine (carry: [".whl"]);
#                                                 # figures and sweep outputs under $OUT
#   bash tests/benchmarks/gpu_check.sh run --cpu  # a dry run of the same on this CPU machine
#
# "run" measures, on the JAX backend:
#   1. tests/benchmarks/bench_gpu.py: the finder (several steps per compiled call, also at
#      1 and 100) against a bare train_on_batch loop, a jitted step and the lax.scan of all
#      steps (the limit), at batch 32, 250 and 1024;
#   2. bench_gpu.py --agreement: the per-step path twice, the fused path twice and fused
#      against per-step, with XLA's default kernels and with deterministic ones, to tell the
#      GPU's run-to-run differences from the fused path's;
#   3. a sweep with `backend: jax` on local Ray (8 range tests of the digits ConvNet) at
#      --gpus-per-trial 1 (the node's JAX compilation cache cold, then warm) and 0.25: wall
#      time of each and each trial's cost (a worker's first trial compiles or reads the cache,
#      the later ones reuse the compiled step);
#   4. the packing of 1, 4 and 8 processes of range tests on the one GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode="${1:-run}"

if [[ "$mode" == "prepare" ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  mkdir -p .whl
  plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
           "${plat[@]}" -d .whl "$@"; }
  dl keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
     typing-inspection==0.4.5 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
     rpds-py==2026.9.1 tensorboardX==2.6.5 "ray==2.60.0"
  # Ray's wheel without the parts a sweep never uses (Java workers, RLlib, Serve, LLM): 79 -> ~31 MB.
  ray_whl=$(ls .whl/ray-2.60.0-*.whl)
  tmp=$(mktemp -d)
  (cd "$tmp" && python3 -m zipfile -e "$OLDPWD/$ray_whl" . && rm -rf ray/jars ray/rllib ray/serve ray/llm \
     && tar cf - . | xz -6 > "$OLDPWD/.whl/ray-stripped.tar.xz")
  rm -rf "$tmp" "$ray_whl"
  du -sh .whl
  exit 0
fi

# ----------------------------------------------------------------------------- run
# Each phase has its own time limit, so one that hangs leaves the others' figures; the
# FIG lines go to stdout and $OUT/figs.txt, the logs and sweep outputs into one tarball
# (the device returns at most 8 files).
set +e
cpu=0; [[ "${2:-}" == "--cpu" ]] && cpu=1
OUT="${OUT:-/tmp/lrrt-gpu-out}"; mkdir -p "$OUT"
work=$(mktemp -d)
site=/tmp/site
if ! python3 -c "import keras, ray" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  tar xJf .whl/ray-stripped.tar.xz -C "$site"
fi
# zipfile -e drops the executable bits of Ray's own programs (gcs_server, raylet, ...)
find "$site/ray/core" -type f ! -name '*.py' ! -name '*.pyc' -exec chmod +x {} + 2>/dev/null
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1
python3 -c "import jax, keras; print('devices', jax.devices(), 'keras', keras.__version__, 'jax', jax.__version__)" \
  | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$OUT/env.txt" 2>/dev/null

if [[ $cpu == 1 ]]; then
  steps=30; batches=32; pack=1,2; n=2000; gpus=(--local-gpus 1); lim=(300 150 200 200)
else
  steps=300; batches=32,250,1024; pack=1,4,8; n=20000; gpus=(); lim=(210 110 150 120)
fi
figs() { tee -a "$work/$1.txt" | grep --line-buffered '^FIG' | tee -a "$OUT/figs.txt"; }

phases="${PHASES:-single agree sweep pack}"
# 1. the finder against the limits, at each batch size
[[ $phases == *single* ]] && timeout "${lim[0]}" python3 tests/benchmarks/bench_gpu.py --steps "$steps" --batches "$batches" --pack "" \
  --n "$n" --finder-k 1,100 2>&1 | figs bench_single
echo "phase single: exit ${PIPESTATUS[0]}"

# 2. curve agreement, default then deterministic XLA kernels
for flags in "" "--xla_gpu_deterministic_ops=true"; do
  [[ $phases == *agree* ]] && XLA_FLAGS="$flags" timeout "${lim[3]}" python3 tests/benchmarks/bench_gpu.py \
    --agreement --steps "$steps" --batches "$batches" --n "$n" 2>&1 | figs bench_agree
done
echo "phase agree: exit ${PIPESTATUS[0]}"

# 3. a backend: jax sweep at 1 GPU per trial (cache cold, then warm) and at 0.25
cat > "$work/gpu_sweep.yaml" <<'YAML'
name: gpu_sweep
backend: jax
workload: digits_cnn
grid:
  optimizer: [adam, sgd]
  batch_size: [64]
  seed: [0, 1, 2, 3]
range_test:
  start_lr: 1.0e-5
  end_lr: 10.0
  steps: 200
YAML
# in this order: the node's JAX compilation cache ($work/xdg) cold, then warm
export XDG_CACHE_HOME="$work/xdg"
i=0
[[ $phases == *sweep* ]] && for g in ${SWEEPS:-1 1 0.25}; do
  i=$((i + 1)); name="sweep${i}_gpu$g"
  t0=$(date +%s.%N)
  timeout "${lim[1]}" python3 -m sweeps.cli sweep "$work/gpu_sweep.yaml" --out "$work/$name" \
    --gpus-per-trial "$g" --cpus-per-trial 1 "${gpus[@]}" -q > "$work/$name.log" 2>&1
  echo "phase $name: exit $?"
  t1=$(date +%s.%N)
  python3 - "$work/$name" "$g" "$(python3 -c "print($t1 - $t0)")" <<'PY' | tee -a "$OUT/figs.txt"
import json, pathlib, sys
out, g, wall = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
recs = sorted((json.loads(p.read_text()) for p in (out / "trials").glob("*.json")), key=lambda r: r["finished_at"])
trials = [(r["name"], r["status"], round(r["wall_s"], 2), round(r["curve"]["wall_s"], 2) if r.get("curve") else None,
           (r.get("node") or "")[:8], r.get("gpu_ids")) for r in recs]
print("FIG " + json.dumps({"kind": "sweep", "gpus_per_trial": float(g), "run": out.name, "wall_s": round(wall, 1),
                           "ok": sum(r["status"] == "ok" for r in recs), "trials": trials}))
PY
done

# 4. packing: 1, 4 and 8 processes of range tests on the one GPU
[[ $phases == *pack* ]] && timeout "${lim[2]}" python3 tests/benchmarks/bench_gpu.py --steps "$steps" --batches "$batches" --pack "$pack" \
  --n "$n" --k 3 --skip-single 2>&1 | figs bench_pack
echo "phase packing: exit ${PIPESTATUS[0]}"

tar czf "$OUT/logs.tgz" --exclude=./xdg -C "$work" . 2>/dev/null
ls "$work/xdg/lrrt/jax" 2>/dev/null | wc -l | sed "s/^/jax cache entries: /"
ls -la "$OUT"
