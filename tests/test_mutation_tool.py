"""tools/mutation.py's bookkeeping (`make mutation`): the equivalents it leaves out of its reports still name
lines that exist, every area names modules that exist, and the mutants killed by a timeout (a paused run) can be
run again. The mutation runs themselves are hours long and stay out of the suite."""

import sqlite3
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
mutation = pytest.importorskip("mutation")  # tools/mutation.py (needs Python >= 3.11 for tomllib)


def test_every_equivalent_names_a_line_of_a_mutated_module():
    """Guards against stale entries: an edited line leaves an entry that hides nothing (or, worse, a new
    line that happens to read the same)."""
    mutated = {m for area in mutation.load_areas().values() for m in area.modules}
    for entry in mutation.load_equivalents():
        assert entry["module"] in mutated, entry
        lines = {line.strip() for line in (REPO / entry["module"]).read_text().splitlines()}
        assert entry["line"].strip() in lines, entry
        assert entry["operator"].startswith("core/") and entry["reason"].strip(), entry


def test_every_area_names_existing_modules_and_test_files():
    for area in mutation.load_areas().values():
        assert all((REPO / m).is_file() for m in area.modules), area.name
        present = [t for t in area.tests if (REPO / t.split("::")[0]).exists()]
        assert present, f"area {area.name} runs no existing test"


def test_rerun_timeouts_makes_only_the_timed_out_mutants_pending(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "SCRATCH", tmp_path)
    area = next(iter(mutation.load_areas().values()))
    (tmp_path / area.name).mkdir()
    with sqlite3.connect(tmp_path / area.name / "session.sqlite") as con:
        con.execute("CREATE TABLE work_results (output TEXT, job_id TEXT)")
        con.executemany("INSERT INTO work_results VALUES (?, ?)", [("timeout", "a"), ("1 failed", "b"), ("", "c")])
    assert mutation.rerun_timeouts(area) == 1
    with sqlite3.connect(tmp_path / area.name / "session.sqlite") as con:
        assert sorted(j for (j,) in con.execute("SELECT job_id FROM work_results")) == ["b", "c"]
