#!/usr/bin/env bash
# The model-size sweep behind the zoo's shape (results: weights/README.md).
# Each configuration trains the softmax variant for the same wall-clock
# budget (--minutes, so faster shapes take more steps); two lanes run at a
# time. Usage: bench/sweep.sh MINUTES   (run dirs and logs: runs/sweep/)
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-12}
run() { # name, flags...
  local name=$1; shift
  node dist/src/cli/main.js train --variant softmax --seed 0 --minutes "$MIN" --warmup 50 --eval-every 100 \
    --out "runs/sweep/$name" "$@" > "runs/sweep/$name.log" 2>&1 || echo "$name failed" >&2
}
lane1() { run d128-l4-lr3e-3 --dim 128 --layers 4 --heads 4 --lr 3e-3; run d256-l4-lr3e-3 --dim 256 --layers 4 --heads 8 --lr 3e-3; run d128-l4-lr1e-3 --dim 128 --layers 4 --heads 4 --lr 1e-3; }
lane2() { run d192-l4-lr3e-3 --dim 192 --layers 4 --heads 6 --lr 3e-3; run d128-l8-lr3e-3 --dim 128 --layers 8 --heads 4 --lr 3e-3; }
lane1 & lane2 & wait
