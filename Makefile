# One entry point per job; every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= $(abspath ../shared/datasets/cifar10)
export EENAS_DATA ?= $(DATA)

.PHONY: install test demo weights weights-mobilenet-v2 weights-squeezenet weights-shufflenet-v2 training-state bench bench-predictor gpu-check lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,onnx,dask]"
	touch $(STAMP)

install: $(STAMP)

# The slowest tests are listed at the end, so a test that starts training more than it needs shows up in CI's log.
# One pytest-xdist worker per core, whole files each (module fixtures train once): every test trains on one
# thread (tests/conftest.py), so a single pytest process leaves the second core idle.
test: install
	$(PY) -m pytest -q -n auto --dist loadfile --durations=10

# Serial for memory's sake: --workers 2 gives the same front 1.35x faster (README), but each worker holds a feature
# bank of its own, about 19 GB together on a 24 GB machine.
demo: install
	$(VENV)/bin/eenas search --dataset cifar10 --budget quick --out runs/demo --force

# The shipped weights' pretrainings (hours each on one core; resumable: rerun to continue after the last finished
# epoch), then their registry entries (docs/training.md: Pretrained weights; docs/enos.md: Pretrained float
# networks).  training-state/KIND/ carries a run's last checkpoint from one machine to the next (KIND is the cache's
# checkpoint folder); the cache's own checkpoint wins when it is there.  The three can run side by side
# (make -j3 weights), each on WEIGHTS_THREADS threads.
CACHE ?= $(HOME)/.cache/eenas
WEIGHTS_THREADS ?= 1
# 200 epochs: the shipped file's run (its registry entry records the command, wall time and accuracy against epochs).
MBV2_WEIGHTS := --dataset cifar10 --budget long --width-mult 0.5 --epochs 200
ENOS_WEIGHTS := --dataset cifar10 --budget long
weights: weights-mobilenet-v2 weights-squeezenet weights-shufflenet-v2

training-state: install
	for kind in $$(ls training-state); do [ -d training-state/$$kind ] || continue; \
	  mkdir -p $(CACHE)/checkpoints/$$kind; cp -n training-state/$$kind/*.pt $(CACHE)/checkpoints/$$kind/ 2>/dev/null; \
	done; true

weights-mobilenet-v2: training-state
	OMP_NUM_THREADS=$(WEIGHTS_THREADS) $(VENV)/bin/eenas pretrain $(MBV2_WEIGHTS) --precisions '' --pretrained none
	$(VENV)/bin/eenas weights publish mobilenet_v2_w050_cifar10 $(MBV2_WEIGHTS) --ship-qat

weights-squeezenet: training-state
	OMP_NUM_THREADS=$(WEIGHTS_THREADS) $(VENV)/bin/eenas enos pretrain --model squeezenet $(ENOS_WEIGHTS) \
	  --publish squeezenet_w100_cifar10

weights-shufflenet-v2: training-state
	OMP_NUM_THREADS=$(WEIGHTS_THREADS) $(VENV)/bin/eenas enos pretrain --model shufflenet_v2 $(ENOS_WEIGHTS) \
	  --publish shufflenet_v2_w050_cifar10

bench: install
	$(PY) benchmarks/run.py

# The predictors against the exhaustive front at quick (heavy: trains the whole head bank once; docs/results.md: Predictors against the exhaustive front)
bench-predictor: install
	$(PY) benchmarks/run.py predictor

# On a lent GPU machine, under a time limit: timeout 540 make gpu-check (results in $$OUT or here)
gpu-check: install
	$(PY) benchmarks/gpu_check.py

lint: install
	$(VENV)/bin/ruff check eenas tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
