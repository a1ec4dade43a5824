#!/bin/bash
# Second GPU session (2026-11-27): four fits of the default recipe side by side, stopped
# before evaluation (fit_only.py); their weights come back and are evaluated and exported
# on the CPU with `python -m train --resume`. base and base_i1 differ only in the initial
# weights (--init-offset 1), as do s50 and s50_i1: the noise that a recipe change must beat.
# Needs .gpu/data (pack_dataset.py) and .gpu/whl (keras, namex, optree for Python 3.12).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
OUT=${OUT:-experiments/gpu_recipes/out}; mkdir -p $OUT /tmp/out /tmp/runs
export PYTHONPATH=/tmp/site:. KERAS_BACKEND=torch OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi -L; nproc
python3 -c "import keras, torch; print(keras.__version__, keras.backend.backend(), torch.cuda.is_available())" || exit 1
fit() { name=$1; shift
  ( python3 experiments/gpu_recipes/fit_only.py "$@" --data .gpu/data --out /tmp/runs/$name --loader-workers 3 \
      > /tmp/out/$name.log 2>&1 && touch /tmp/runs/$name/fitted ) & }
fit base
fit base_i1 --init-offset 1
fit s50 --synthetic-stain 0.5
fit s50_i1 --init-offset 1 --synthetic-stain 0.5
# Whatever has finished is in $OUT at any moment, so a run cut off by the time limit loses
# only the unfinished fits.
pack() {
  for d in /tmp/runs/*/; do n=$(basename $d)
    [ -f $d/fitted ] && [ ! -f $OUT/$n.keras ] && cp $d/checkpoints/last.keras $OUT/$n.keras
    cp $d/run.json /tmp/out/$n.run.json 2>/dev/null; cp $d/log.csv /tmp/out/$n.csv 2>/dev/null
    cp $d/checkpoints/state.json /tmp/out/$n.state.json 2>/dev/null
  done
  tar czf $OUT/.r.tgz -C /tmp/out . && mv $OUT/.r.tgz $OUT/results.tgz; }
sleep 10; while pgrep -f fit_only.py >/dev/null; do sleep 15; pack; done
pack; ls -la $OUT
for f in /tmp/out/*.log; do echo "== $f"; tail -3 $f; done
