# Two commands matter: `make run` (try it, no services) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench venv venv-dev clean

$(BIN)/.runtime: requirements.txt
	scripts/bootstrap-venv.sh $(PYTHON) requirements.txt
	touch $@

$(BIN)/.dev: requirements.txt requirements-dev.txt
	scripts/bootstrap-venv.sh $(PYTHON) requirements-dev.txt
	touch $(BIN)/.runtime $@

venv: $(BIN)/.runtime
venv-dev: $(BIN)/.dev

run: $(BIN)/.runtime
	scripts/run-dev.sh

test: $(BIN)/.dev
	scripts/test-setup.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	DATABASE_URL=sqlite:///:memory: $(BIN)/python manage.py makemigrations --check --dry-run --settings=project.settings_test >/dev/null
	scripts/run-tests.sh $(PYTEST_ARGS)  # two passes: the self-contained tests on two processes, then the rest
	scripts/verify-portal-image.sh

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/.dev
	scripts/test-setup.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var staticfiles
