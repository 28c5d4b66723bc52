# holocam — the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: run test weights kernels bench keys venv clean up up-preview down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, exactly pinned: the CPU build; anything looser pulls the CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[segmenter,v4l2,test,bench]'
	touch $(STAMP)

venv: $(STAMP)

weights: $(STAMP)
	$(PY) -m segmenter weights

# The segmenter's fused NHWC kernels and the sink's native frame passes (need g++/gcc). Without
# them the model runs on stock torch ops and the sink on OpenCV, slower, so a failed build is
# reported and the target goes on.
kernels: $(STAMP)
	-$(PY) -m segmenter kernels
	-$(PY) -m capture_sink.native

run: weights kernels
	$(PY) -m capture_sink run --with-segmenter $(ARGS)

test: weights kernels
	$(PY) -m pytest $(PYTEST_ARGS)

bench: weights kernels
	$(PY) -m bench $(ARGS)

keys: $(STAMP)
	$(PY) -m shared.keys keys/

# Containers: `make up` checks .env and the devices first, then runs docker compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

up:
	$(PYTHON) compose/preflight.py camera
	$(COMPOSE) up --build $(ARGS)

up-preview:
	$(PYTHON) compose/preflight.py preview
	$(COMPOSE) -f docker-compose.preview.yml up --build $(ARGS)

down:
	$(COMPOSE) down --remove-orphans
	$(COMPOSE) -f docker-compose.preview.yml down --remove-orphans

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
