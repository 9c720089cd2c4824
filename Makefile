# Every target builds and uses a local virtual environment, so a fresh machine
# with only python3 needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p .bulk-topup/demo
	$(BIN)/bulk-topup run samples/orders.xlsx --emulator --emulator-speed 40 --yes \
		--state-dir .bulk-topup/demo --batch demo-$$(date +%Y%m%d-%H%M%S) \
		--out .bulk-topup/demo/orders-results.xlsx; \
	code=$$?; echo "exit code $$code: 5 means some rows are not final yet (the sample holds the"; \
	echo "sandbox's UNKNOWN_ERROR number on purpose); the results workbook says why, row by row."; \
	[ $$code -eq 0 ] || [ $$code -eq 4 ] || [ $$code -eq 5 ]

test: $(STAMP)
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check bulk_topup tests bench
	$(BIN)/ruff format --check bulk_topup tests bench
	$(BIN)/mypy bulk_topup

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .bulk-topup
