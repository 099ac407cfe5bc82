#!/usr/bin/env bash
# The GPU benchmarks of jaxseq in one call, about 8 minutes on one H100 or H200.
#
#   bash benchmarks/gpu/prepare.sh         # here, once: wheels into .whl/, Multi30k into .gpu_data/
#   bash benchmarks/gpu/run.sh [--out DIR] # there (default DIR: $OUT/gpu, else /tmp/jaxseq_gpu)
#   bash benchmarks/gpu/run.sh --dry-run --out /tmp/dry   # every step at tiny sizes on the CPU
#
# Steps, each in its own process under its own time budget (seconds, below):
#   environment  installs the carried wheels (.whl/) where imports are missing; versions, GPU name
#   compare      jaxseq (float32, bfloat16) vs the same network in PyTorch on CUDA, small and large
#   multi30k     $CONFIG trained to completion (benchmarks.quality.quality): test2016 BLEU, time
#   utilisation  the trainer's loop with config.log_every_steps=1 against 100 (steps/s)
#   sweep        jaxseq train tokens/s, batch doubled until it grows by less than 5%
#   translate    benchmarks/speed/translate_throughput.py
# A failed or timed-out step is recorded and the next one runs; the exit status is 1 if any
# step failed. After every step DIR holds results.json (every step's status and record),
# results.md (the tables) and run.log, and the Multi30k results file once it is written.
set -u

# The Multi30k config trained to completion (--config FILE overrides).
CONFIG=configs/multi30k_de_en_fast.py
[ -f "$(dirname "$0")/../../$CONFIG" ] || CONFIG=configs/multi30k_de_en.py

# Time budget of each step, in seconds; together under 8 minutes with the report's runs.
BUDGET_ENVIRONMENT=30
BUDGET_COMPARE=85
BUDGET_MULTI30K=180
BUDGET_UTILISATION=65
BUDGET_SWEEP=70   # starts no new batch size after 45 s
BUDGET_TRANSLATE=40

# The dry run's Multi30k: these config overrides, on the first lines of each file.
# Words, not SentencePiece, and at most 8 of them: one length bucket to compile.
DRY_STEPS=10
DRY_SET=(num_train_steps=$DRY_STEPS warmup_steps=1 batch_size=16 model.embed_size=16
         model.hidden_size=16 model.attention_size=16 model.max_length=8 bucket_lengths=
         data.tokenizer=word
         eval_every_steps=1000 checkpoint_every_steps=1000 average_last_checkpoints=0
         decode.beam_size=2 num_attention_plots=0 num_samples=1)
DRY_TRAIN_LINES=1000  # about 100 of them fit model.max_length=8
DRY_EVAL_LINES=24

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

DRY=""
OUTDIR="${OUT:+$OUT/gpu}"
OUTDIR="${OUTDIR:-/tmp/jaxseq_gpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR="$2"; shift ;;
    --out=*) OUTDIR="${1#--out=}" ;;
    --config) CONFIG="$2"; shift ;;
    --config=*) CONFIG="${1#--config=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/../.." || exit 2
REPO="$(pwd)"
PYTHON="${PYTHON:-python3}"
STARTED="$(date +%s.%N)"
mkdir -p "$OUTDIR" || exit 2
OUTDIR="$(cd "$OUTDIR" && pwd)"
LOG="$OUTDIR/run.log"
rm -f "$OUTDIR"/results.json "$OUTDIR"/results.md "$LOG"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/jaxseq_gpu.XXXXXX")" || exit 2
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs" "$WORK/results"
RESULTS="$WORK/results"
SITE=/tmp/site  # where the carried wheels are installed

export PYTHONUNBUFFERED=1
export TQDM_MININTERVAL=10  # progress bars: a line every 10 s in the log, not hundreds
site_path=":$SITE"
[ -z "$DRY" ] || site_path=""
export PYTHONPATH="$REPO$site_path${PYTHONPATH:+:$PYTHONPATH}"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$WORK/xla_cache}"
export JAXSEQ_TFDS_DIR="${JAXSEQ_TFDS_DIR:-$WORK/tfds}"
if [ -z "${JAXSEQ_DATA_DIR:-}" ] && [ -d "$REPO/.gpu_data/multi30k" ]; then
  export JAXSEQ_DATA_DIR="$REPO/.gpu_data"  # copied here by prepare.sh: ../shared stays behind
fi
DEVICE=cuda
if [ -n "$DRY" ]; then
  DEVICE=cpu
  export JAX_PLATFORMS=cpu
  # Tiny programs: XLA's optimisations, and its fusion emitters (3x the compile time of a
  # train step on the CPU), cost more than they save.
  XLA_FLAGS="${XLA_FLAGS:---xla_backend_optimization_level=0}"
  export XLA_FLAGS="$XLA_FLAGS --xla_cpu_use_fusion_emitters=false"
  : "${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:=0.1}"  # cache the small programs too
  export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS
  for var in BUDGET_ENVIRONMENT BUDGET_COMPARE BUDGET_MULTI30K BUDGET_UTILISATION \
             BUDGET_SWEEP BUDGET_TRANSLATE; do
    printf -v "$var" 300  # a safety net only: the dry run takes seconds a step
  done
  source_dir="${JAXSEQ_DATA_DIR:-$REPO/../shared/data}/multi30k"
  mkdir -p "$WORK/data/multi30k"
  for f in "$source_dir"/*.de "$source_dir"/*.en; do
    case "$(basename "$f")" in
      train.*) lines=$DRY_TRAIN_LINES ;;
      *) lines=$DRY_EVAL_LINES ;;
    esac
    head -n "$lines" "$f" >"$WORK/data/multi30k/$(basename "$f")"
  done
  export JAXSEQ_DATA_DIR="$WORK/data"
fi

FAILED=()

report() {
  "$PYTHON" -m benchmarks.gpu.report --work "$WORK" --out "$OUTDIR" --config "$CONFIG" \
      --started "$STARTED" ${DRY:+--dry_run} || echo "report failed" | tee -a "$LOG"
}

# step NAME BUDGET RESULT_FILE COMMAND...: runs COMMAND under the budget, logs it, records
# its exit status and seconds in WORK/status.jsonl, and rewrites the report.
step() {
  local name="$1" budget="$2" result="$3" start rc seconds
  shift 3
  start="$(date +%s.%N)"
  echo "=== $name (budget ${budget} s): $*" | tee -a "$LOG"
  timeout -k 10 "$budget" "$@" 2>&1 | tee -a "$LOG" "$WORK/logs/$name.log"
  rc="${PIPESTATUS[0]}"
  seconds="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  printf '{"step": "%s", "rc": %d, "seconds": %s, "budget_seconds": %d, "result": "%s"}\n' \
      "$name" "$rc" "$seconds" "$budget" "$result" >>"$WORK/status.jsonl"
  if [ "$rc" -ne 0 ] || [ ! -f "$result" ]; then
    FAILED+=("$name")
    echo "=== $name FAILED (exit status $rc, ${seconds} s)" | tee -a "$LOG"
  else
    echo "=== $name done in ${seconds} s" | tee -a "$LOG"
  fi
  report
}

echo "jaxseq GPU run${DRY:+ (dry run)}: config $CONFIG, out $OUTDIR, work $WORK" | tee -a "$LOG"
command -v nvidia-smi >/dev/null && nvidia-smi 2>&1 | tee -a "$LOG"

# environment: the image lacks tfds, grain, ml_collections, ...: install the carried wheels.
step environment "$BUDGET_ENVIRONMENT" "$RESULTS/environment.json" \
    bash benchmarks/gpu/install.sh "$SITE" "$RESULTS/environment.json" ${DRY:+--dry_run}

# compare: JAX preallocates 75% of the GPU by default; half leaves PyTorch room.
step compare "$BUDGET_COMPARE" "$RESULTS/compare.json" \
    env XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 "$PYTHON" -m benchmarks.gpu.steps compare \
    --device "$DEVICE" --out "$RESULTS/compare.json" ${DRY:+--dry_run}

NAME="$(basename "$CONFIG" .py)_gpu"
config_flags=()
utilisation_flags=(--steps 200)
if [ -n "$DRY" ]; then
  utilisation_flags=(--steps "$DRY_STEPS")  # the Multi30k run's: its compiled train step is reused
  for kv in "${DRY_SET[@]}"; do
    config_flags+=("--config.$kv")
  done
fi
step multi30k "$BUDGET_MULTI30K" "$RESULTS/$NAME.json" \
    "$PYTHON" -m benchmarks.quality.quality --config="$CONFIG" --name="$NAME" \
    --workdir="$WORK/multi30k" --out_dir="$RESULTS" "${config_flags[@]}"

step utilisation "$BUDGET_UTILISATION" "$RESULTS/utilisation.json" \
    "$PYTHON" -m benchmarks.gpu.steps utilisation --config "$CONFIG" \
    --workdir "$WORK/utilisation" --tokenizers_from "$WORK/multi30k" \
    --out "$RESULTS/utilisation.json" ${DRY:+--dry_run} "${utilisation_flags[@]}" \
    "${config_flags[@]}"

step sweep "$BUDGET_SWEEP" "$RESULTS/sweep.json" \
    "$PYTHON" -m benchmarks.gpu.steps sweep --budget_seconds "$((BUDGET_SWEEP - 25))" \
    --out "$RESULTS/sweep.json" ${DRY:+--dry_run}

if [ -n "$DRY" ]; then
  translate_flags=(--num_sentences 16 --num_single 2 --num_eager 1 --batch_size 8
                   --beam_sizes 2 --repeats 1)
else
  translate_flags=(--num_sentences 1024 --batch_size 256 --num_eager 8 --repeats 2)
fi
step translate "$BUDGET_TRANSLATE" "$RESULTS/translate.json" \
    "$PYTHON" -m benchmarks.speed.translate_throughput --output "$RESULTS/translate.json" \
    "${translate_flags[@]}"

total="$(awk -v a="$STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')"
cat "$OUTDIR/results.md"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "=== done in ${total} s; failed: ${FAILED[*]} (see $OUTDIR/results.json)" | tee -a "$LOG"
  exit 1
fi
echo "=== done in ${total} s; all steps ok: $OUTDIR/results.md" | tee -a "$LOG"
