#!/usr/bin/env bash
# The offline main job: real transfer learning on real images, end to end.
#   1. digits (real, scikit-learn) and Fashion-MNIST (real, from Debian) -> class folders
#   2. transfer ImageNet EfficientNet-Lite0 (real weights, converted by setup.sh) to digits:
#      head, then every block with layer-wise decayed learning rates; metrics, plots, SavedModel
#   3. predict with that SavedModel on three test images it never trained on
#   4. second example, transferring from a backbone tltk trains itself: pretrain MobileNetV3-Small
#      on Fashion-MNIST, then transfer it to the same digits split
set -euo pipefail
cd "$(dirname "$0")/.."
TLTK=.venv/bin/tltk
$TLTK data digits data/digits
$TLTK data fashion_mnist data/fashion_mnist --per-class 800

predict_three() {  # predict_three RECIPE_NAME: the run's SavedModel on three of its test images
  local run model images
  run=$(readlink -f "runs/$1/latest")
  echo "== run folder: $run"
  ls "$run"
  model=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['export'])" "$run/state.json")
  echo "== predictions of the exported SavedModel ($model) on three test images (never trained on)"
  images=$(.venv/bin/python -c "import csv,sys; rows=[r['example'] for r in csv.DictReader(open(sys.argv[1])) if r['split']=='test']; print(' '.join(rows[::len(rows)//3][:3]))" "$run/splits.csv")
  # shellcheck disable=SC2086
  $TLTK predict "$model" $images --top-k 2
  echo "== test metrics: $run/metrics.json; plots: $run/learning_curves.png $run/confusion_matrix.png"
}

echo "== 1/2: ImageNet EfficientNet-Lite0 -> digits"
$TLTK train recipes/digits_imagenet.yaml --new
predict_three digits_imagenet

echo "== 2/2: MobileNetV3-Small pretrained here on Fashion-MNIST -> digits"
$TLTK train recipes/fashion_mnist_pretrain.yaml --new
$TLTK train recipes/digits_transfer.yaml --new
predict_three digits_transfer
