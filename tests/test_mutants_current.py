"""`make mutants` names regressions the tests must catch; each must still name real code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_mutant_still_names_code_that_exists() -> None:
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
    assert spec and spec.loader
    mutants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutants)
    assert len(mutants.MUTANTS) >= 12
    for what, name, old, new, tests in mutants.MUTANTS:
        text = (ROOT / name).read_text()
        assert text.count(old) >= 1, f"{what}: {old!r} is no longer in {name}"
        assert old != new
        for test in tests.split():
            assert (ROOT / test.split("::")[0]).is_file(), test
            if "::" in test:
                assert f"def {test.split('::')[1]}(" in (ROOT / test.split("::")[0]).read_text()
