#!/usr/bin/env bash
# How the models in weights/ were made (see weights/README.md).
#
# The four variants of the attention-sink pre-training ablation: the same
# shape, data, seed, schedule and number of steps, two runs at a time (the
# machine this was made on has two cores), each run's directory under
# runs/zoo/, then each published into weights/NAME and weights/manifest.json.
# The runs use a frozen copy of the built code (runs/zoo-dist), so that
# rebuilding the project while they train cannot change them halfway.
#
#   weights/train_zoo.sh             train and publish all four
#   weights/train_zoo.sh lane1       only softmax, then softmax1 (lane2: sink-token, then learned-sink)
#   STEPS=N weights/train_zoo.sh     another length
# A run that was interrupted is resumed from its last checkpoint; a finished one is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-500}
COMMON=(--seed 0 --steps "$STEPS" --dim 128 --layers 4 --heads 4 --seq-len 256 --batch 8
        --lr 3e-3 --min-lr 3e-4 --warmup 50 --eval-every 100 --checkpoint-every 50
        --tokenizer weights/tokenizer.json)
mkdir -p runs/zoo
if [ ! -d runs/zoo-dist ]; then npx tsc -p . && cp -r dist runs/zoo-dist; fi
CLI=runs/zoo-dist/src/cli/main.js

train() { # variant: train, or resume a run that was interrupted
  if [ -f "runs/zoo/$1/train_state.json" ]; then node "$CLI" train --resume "runs/zoo/$1"
  else node "$CLI" train --variant "$1" "${COMMON[@]}" --out "runs/zoo/$1"; fi >> "runs/zoo/$1.log" 2>&1
}
lane1() { train softmax; train softmax1; }
lane2() { train sink-token; train learned-sink; }
publish() {
  for v in softmax softmax1 learned-sink sink-token; do
    node "$CLI" publish --run "runs/zoo/$v" --name "$v" $([ "$v" = softmax ] && echo --default) >> runs/zoo/publish.log 2>&1
  done
}
case "${1:-all}" in
  lane1) lane1 ;;
  lane2) lane2 ;;
  publish) publish ;;
  all) lane1 & lane2 & wait; publish ;;
esac
