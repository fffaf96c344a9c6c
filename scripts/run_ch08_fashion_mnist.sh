#!/usr/bin/env bash
# Chapter 8's stored runs: the full Fashion-MNIST protocol (55,000 training / 5,000 validation / 10,000 test images;
# small CNN and compact CNN, baseline and x2, x4 factors per layer; learning-rate grid on validation, then 5 seeds
# per model, tested once), one JSON file per run in lowrank_utils/stored_runs/ch08_fashion_mnist/.
#
#   bash scripts/run_ch08_fashion_mnist.sh        # starts WORKERS (default 2) background workers and returns
#   tail -f artifacts/ch08_fashion_mnist.log      # follow them
#
# Each worker is `nohup nice -n 10` with one torch thread, so the job yields to other work on a shared machine.
# It is resumable: a run whose file exists is skipped, so after an interruption run the script again (it removes the
# stale lock files of the interrupted runs first). Measured cost: see the chapter (about an hour of CPU time).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=lowrank_utils/stored_runs/ch08_fashion_mnist
LOG=${LOG:-artifacts/ch08_fashion_mnist.log}
PIDS=${LOG%.log}.pids
PYTHON=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-2}

mkdir -p "$OUT" "$(dirname "$LOG")"
if [ -f "$PIDS" ]; then
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "a worker (pid $pid) is still running; wait for it or stop it before starting again" >&2
      exit 1
    fi
  done < "$PIDS"
fi
rm -f "$OUT"/*.lock  # claims left by an interrupted run (no worker is running now)
: > "$PIDS"
for i in $(seq "$WORKERS"); do
  nohup nice -n 10 "$PYTHON" -m lowrank_utils.chapters.ch08_image_classification.experiment \
      --preset full --out "$OUT" >> "$LOG" 2>&1 &
  echo $! >> "$PIDS"
  echo "worker $i: pid $!, log $LOG"
  sleep 5  # stagger the starts so the workers claim different runs
done
