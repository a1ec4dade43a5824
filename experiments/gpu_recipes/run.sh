#!/bin/bash
# The training set, packed by pack_dataset.py, in .gpu/data; Keras wheels in .gpu/whl.
# Recipe experiments on the GPU machine (Keras on PyTorch: no TensorFlow there).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
OUT=${OUT:-experiments/gpu_recipes/out}; mkdir -p $OUT
export PYTHONPATH=/tmp/site:. KERAS_BACKEND=torch OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi -L; nproc
python3 -c "import keras, torch, skimage, numpy; print(keras.__version__, keras.backend.backend(), torch.cuda.is_available(), skimage.__version__, numpy.__version__)" || exit 1
mkdir -p /tmp/out
pack() { tar czf $OUT/.r.tgz -C /tmp/out . 2>/dev/null && mv $OUT/.r.tgz $OUT/results.tgz; }
run() { name=$1; workers=$2; shift 2
  ( python3 -m train --data .gpu/data --out /tmp/runs/$name --loader-workers $workers "$@" > /tmp/out/$name.log 2>&1
    cp /tmp/runs/$name/model/nuclei.json /tmp/out/$name.json 2>/dev/null; cp /tmp/runs/$name/log.csv /tmp/out/$name.csv 2>/dev/null ) & }
run base 3 --epochs 26
run e40 5 --epochs 40
run d20 3 --epochs 26 --diameter 20
run kb1 3 --epochs 26 --kind-balance 1.0
( while sleep 20; do pack; done ) &
loop=$!
wait $(jobs -p | grep -v $loop) 2>/dev/null
while pgrep -f "python3 -m train" >/dev/null; do sleep 5; done
kill $loop; pack
for f in /tmp/out/*.log; do echo "== $f"; grep -E "loaded|validation:|shift:|holdout|Error|error" $f | tail -6; done
