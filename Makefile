# One entry point per job; every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= $(abspath ../shared/datasets/cifar10)
export EENAS_DATA ?= $(DATA)

.PHONY: install test demo weights bench bench-predictor gpu-check lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,onnx,dask]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/eenas search --dataset cifar10 --budget quick --out runs/demo --force

# The shipped weights' pretraining (hours on 2 cores; resumable: rerun to continue after the last finished epoch),
# then their registry entry (docs/training.md: Pretrained weights).  training-state/ carries a run's last
# checkpoint from one machine to the next; the cache's own checkpoint wins when it is there.
CACHE ?= $(HOME)/.cache/eenas
WEIGHTS_THREADS ?= 1
MBV2_WEIGHTS := --dataset cifar10 --budget long --width-mult 0.5 --epochs 120
weights: install
	mkdir -p $(CACHE)/checkpoints/backbone
	cp -n training-state/*.pt $(CACHE)/checkpoints/backbone/ 2>/dev/null || true
	OMP_NUM_THREADS=$(WEIGHTS_THREADS) $(VENV)/bin/eenas pretrain $(MBV2_WEIGHTS) --precisions '' --pretrained none
	$(VENV)/bin/eenas weights publish mobilenet_v2_w050_cifar10 $(MBV2_WEIGHTS)

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
