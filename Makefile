# The two set-up commands of the README. Both create .venv and install the CPU torch wheel first.
.PHONY: setup demo test lint

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/lowdose demo --out runs/demo

test: setup
	./scripts/test-deps.sh
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
