# Every target builds and uses a local virtual environment, so a fresh machine
# with only python3 needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check bench clean i18n mutants screenshots

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (once; the log is $(VENV)/install.log)"
	@$(PY) -m venv $(VENV)
	@( $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[dev]' ) \
		> $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	@# Each demo starts afresh: its emulator lives for one command, so earlier demo batches are gone.
	@rm -rf .bulk-topup/demo && mkdir -p .bulk-topup/demo
	@$(BIN)/bulk-topup run samples/orders.xlsx --emulator --emulator-speed 40 --yes \
		--state-dir .bulk-topup/demo --batch demo --out .bulk-topup/demo/orders-results.xlsx; \
	code=$$?; echo; \
	if [ $$code -eq 5 ]; then echo "exit code 5: some rows are not final yet (the sample holds the"; \
	echo "sandbox's UNKNOWN_ERROR number on purpose); the results workbook says why, row by row."; \
	else echo "exit code $$code (see the README's table)"; fi; \
	[ $$code -eq 0 ] || [ $$code -eq 4 ] || [ $$code -eq 5 ]

test: $(STAMP)
	$(BIN)/pytest

# Without the browser and socket tests: about two minutes, for while you work.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not browser and not socket"

check: $(STAMP)
	$(BIN)/ruff check bulk_topup tests bench tools
	$(BIN)/ruff format --check bulk_topup tests bench tools
	$(BIN)/mypy bulk_topup

# The README's pictures of the console, taken by its browser tests.
screenshots: $(STAMP)
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q -m browser tests/test_console_browser.py

mutants: $(STAMP)
	$(BIN)/python tools/mutants.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Translations: extract the marked messages, merge them into each language's .po, compile the .mo
# (the .mo files are committed: an install needs no compiler). Translate the new entries of the
# .po files, then run it again.
LOCALE := bulk_topup/locale
i18n: $(STAMP)
	@$(BIN)/pybabel extract --no-location --sort-output --no-wrap -k NP_:1c,2 --project bulk_topup \
		--copyright-holder "bulk_topup" -F babel.cfg -o $(LOCALE)/bulk_topup.pot .
	@$(BIN)/pybabel update --no-wrap --ignore-obsolete -D bulk_topup \
		-i $(LOCALE)/bulk_topup.pot -d $(LOCALE)
	@$(BIN)/pybabel compile --statistics -D bulk_topup -d $(LOCALE)

clean:
	rm -rf $(VENV) .bulk-topup
