#!/usr/bin/env bash
# The offline main job: real transfer learning on real images, end to end.
#   1. Fashion-MNIST (real, from Debian) -> class folders; digits (real, scikit-learn) -> folders
#   2. pretrain MobileNetV3-Small on Fashion-MNIST (this makes the pretrained weights)
#   3. transfer it to digits: head, then top blocks; test metrics, plots, SavedModel
#   4. predict with the SavedModel on a few test images
set -euo pipefail
cd "$(dirname "$0")/.."
TLTK=.venv/bin/tltk
$TLTK data fashion_mnist data/fashion_mnist --per-class 800
$TLTK data digits data/digits
$TLTK train recipes/fashion_mnist_pretrain.yaml --new
$TLTK train recipes/digits_transfer.yaml --new
RUN=$(readlink -f runs/digits_transfer/latest)
echo "== run folder: $RUN"
ls "$RUN"
MODEL=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['export'])" "$RUN/state.json")
echo "== predictions of the exported SavedModel ($MODEL) on three test images (never trained on)"
TEST_IMAGES=$(.venv/bin/python -c "import csv,sys; rows=[r['example'] for r in csv.DictReader(open(sys.argv[1])) if r['split']=='test']; print(' '.join(rows[::len(rows)//3][:3]))" "$RUN/splits.csv")
$TLTK predict "$MODEL" $TEST_IMAGES --top-k 2
echo "== test metrics: $RUN/metrics.json; plots: $RUN/learning_curves.png $RUN/confusion_matrix.png"
