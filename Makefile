# av_pose_ros: `make demo` runs the simulated system, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup test demo bench lint clean help

help:
	@echo "make demo    run the simulated system (sets up .venv first)"
	@echo "make test    run the test suite (sets up .venv first)"
	@echo "make bench   speed benchmarks (medians and ratios against baselines)"
	@echo "make setup   only set up .venv (FORCE=1 redoes every step)"
	@echo "make lint    ruff"

setup:
	@$(PYTHON) scripts/bootstrap.py $(if $(FORCE),--force)

test: setup
	$(PY) -m pytest -q test

demo: setup
	$(VENV)/bin/av-pose demo

bench: setup
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

lint: setup
	$(VENV)/bin/ruff check av_pose_ros test benchmarks scripts

clean:
	rm -rf build demo_out .pytest_cache
