"""Mutation testing of the modules that decide results (issue 26): `make mutation [AREA=name]`.

Each area of mutation/areas.toml (a few modules and the fast tests of their area) runs on a scratch copy of the
repository under build/mutation/<area>/tree (the files git tracks or would track, and the built rgprune/_C*.so), so a
mutant never touches the working tree. The tests run with that copy as their working directory and on PYTHONPATH,
so `import rgprune` resolves to the copy (checked before every piece). The cosmic-ray session (sqlite) lives in
build/mutation/<area>/session.sqlite: a rerun resumes where the last one stopped. A piece stops after a time budget
(default 25 minutes, checked between mutants), then prints the survivors that mutation/equivalent.toml does not list
and the score per module.

A rerun copies the tree afresh (so a piece killed while a mutant was applied leaves nothing behind). When a mutated
module changed since the session began, its mutants are made anew; when the area's tests changed, the survivors
are run again (so a new test that kills one is credited).

    python tools/mutation.py                      # every area, in the order of areas.toml
    python tools/mutation.py --area masks --area prunable --budget-min 10
    python tools/mutation.py --area masks --report   # print the survivors and the score, run nothing
    python tools/mutation.py --area masks --show 12  # the diff and test output of survivor #12 of the report

Needs cosmic-ray (pinned in requirements-dev.txt). Run it under `nice` with one worker: it is made for 2 shared cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
AREAS_FILE = REPO / "mutation" / "areas.toml"
EQUIVALENT_FILE = REPO / "mutation" / "equivalent.toml"
# MUTATION_SCRATCH moves the copies and sessions elsewhere (e.g. out of the way of `make clean`)
SCRATCH = Path(os.environ.get("MUTATION_SCRATCH", REPO / "build" / "mutation"))
_PYTHONPATH = os.environ.get("PYTHONPATH", "")


@dataclass
class Area:
    name: str
    modules: list[str]
    tests: list[str]
    timeout: float
    pytest_args: list[str]
    include_operators: list[str]
    exclude_operators: list[str]

    def keeps(self, operator: str) -> bool:
        def any_match(patterns):
            return any(re.fullmatch(p, operator) for p in patterns)

        return (not self.include_operators or any_match(self.include_operators)) and not any_match(
            self.exclude_operators
        )

    @property
    def scratch(self) -> Path:
        """The area's folder: its copy of the repository (``tree``) and its cosmic-ray session."""
        return SCRATCH / self.name

    @property
    def session(self) -> Path:
        return self.scratch / "session.sqlite"


def load_areas(path: Path = AREAS_FILE) -> dict[str, Area]:
    cfg = tomllib.loads(path.read_text())
    defaults = cfg.get("defaults", {})
    areas = {}
    for name, a in cfg["areas"].items():
        areas[name] = Area(
            name=name,
            modules=list(a["modules"]),
            tests=list(a["tests"]),
            timeout=float(a.get("timeout", defaults.get("timeout", 120))),
            pytest_args=list(a.get("pytest-args", defaults.get("pytest-args", []))),
            include_operators=list(a.get("include-operators", defaults.get("include-operators", []))),
            exclude_operators=list(defaults.get("exclude-operators", [])) + list(a.get("exclude-operators", [])),
        )
    return areas


def load_equivalents(path: Path = EQUIVALENT_FILE) -> list[dict]:
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("equivalent", [])
    for e in entries:
        missing = {"module", "operator", "line", "reason"} - set(e)
        if missing:
            raise SystemExit(f"{path}: entry {e} lacks {sorted(missing)}")
    return entries


# --------------------------------------------------------------------------------------------------
# The scratch copy


def tracked_files() -> list[str]:
    """The files git tracks, plus the untracked ones it does not ignore (new tests not committed yet)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    return [f for f in out.decode().split("\0") if f and (REPO / f).is_file()]


def make_copy(tree: Path) -> None:
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for rel in tracked_files():
        dst = tree / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    built = sorted((REPO / "rgprune").glob("_C*.so"))
    if not built:
        raise SystemExit("rgprune/_C*.so is not built: run `make build` first")
    for so in built:
        shutil.copy2(so, tree / "rgprune" / so.name)


def digest(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        p = root / rel
        h.update(rel.encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()


KILLER_TESTS = "_mutants_killed.py"


def area_tests(area: Area, tree: Path, existing_only: bool = False) -> list[str]:
    """The area's tests present in the copy; ``existing_only`` leaves out the tests written to kill survivors
    (tests/test_*_mutants_killed.py), to measure what the rest of the suite kills."""
    return [
        t
        for t in area.tests
        if (tree / t.split("::")[0]).exists() and not (existing_only and t.split("::")[0].endswith(KILLER_TESTS))
    ]


def test_command(tests: list[str], area: Area) -> str:
    return shlex.join([sys.executable, "-m", "pytest", *area.pytest_args, *tests])


def check_copy_is_imported(tree: Path) -> None:
    """`import rgprune` from the copy must load the copy, not the editable install of the working tree."""
    out = subprocess.run(
        [sys.executable, "-c", "import rgprune, rgprune._C; print(rgprune.__file__); print(rgprune._C.__file__)"],
        cwd=tree,
        env=os.environ,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for f in out:
        if not Path(f).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"the copy does not import itself: {f} is outside {tree}")


# --------------------------------------------------------------------------------------------------
# Sessions


def diff_lines(diff: str | None, sign: str) -> list[str]:
    """The removed ("-") or added ("+") source lines of a mutant's unified diff, stripped."""
    return [d[1:].strip() for d in (diff or "").splitlines() if d.startswith(sign) and not d.startswith(sign * 3)]


def mutant_line(tree: Path, mutation, diff: str | None = None) -> str:
    """The original source line a mutant changes: from its diff when there is one (the copy may hold another
    mutant right now), else from the copy."""
    removed = diff_lines(diff, "-")
    if removed:
        return removed[0]
    lines = (tree / mutation.module_path).read_text().splitlines()
    return lines[mutation.start_pos[0] - 1].strip()


def _keyed(items, source_lines) -> dict:
    """{line-independent identity: work item}: (module, operator, original source line, n-th such mutant)."""
    seen: dict = {}
    out = {}
    for item in sorted(items, key=lambda w: (str(w.mutations[0].module_path), w.mutations[0].occurrence)):
        m = item.mutations[0]
        lines = source_lines(str(m.module_path))
        line = lines[m.start_pos[0] - 1].strip() if m.start_pos[0] <= len(lines) else ""
        key = (str(m.module_path), m.operator_name, line)
        seen[key] = seen.get(key, -1) + 1
        out[(*key, seen[key])] = item
    return out


def init_session(area: Area, tree: Path, db_path: Path, carry_over: bool = False) -> int:
    """A fresh session of the area's mutants. ``carry_over``: keep the results of the old session's mutants that
    are still there (same module, operator and source line) after a module changed. Returns how many were kept."""
    from cosmic_ray.commands.init import _all_work_items
    from cosmic_ray.work_db import WorkDB, use_db

    sources = db_path.parent / "sources"
    old = {}
    if carry_over and db_path.exists() and sources.exists():
        with use_db(str(db_path), WorkDB.Mode.open) as db:
            results = dict(db.results)
            keyed = _keyed(list(db.work_items), lambda m: (sources / m).read_text().splitlines())
        old = {k: results[w.job_id] for k, w in keyed.items() if w.job_id in results}
    cwd = os.getcwd()
    os.chdir(tree)
    kept = 0
    try:
        if db_path.exists():
            db_path.unlink()
        with use_db(str(db_path), WorkDB.Mode.create) as db:
            items = [
                w
                for w in _all_work_items([Path(m) for m in area.modules], {})
                if area.keeps(w.mutations[0].operator_name)
            ]
            db.add_work_items(items)
            for key, item in _keyed(items, lambda m: (tree / m).read_text().splitlines()).items():
                if key in old:
                    db.set_result(item.job_id, old[key])
                    kept += 1
    finally:
        os.chdir(cwd)
    for m in area.modules:
        (sources / m).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / m, sources / m)
    return kept


def reset_results(db_path: Path, job_ids: list[str]) -> None:
    import sqlite3

    with sqlite3.connect(db_path) as con:
        con.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in job_ids])


def rerun_timeouts(area: Area) -> int:
    """Make the mutants that were killed by a timeout pending again; returns how many. A run that was paused
    (SIGSTOP, a suspended terminal) lets the running mutant's test time out, and a timeout counts as a kill."""
    import sqlite3

    db_path = area.session
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path) as con:
        return con.execute("DELETE FROM work_results WHERE output = 'timeout'").rowcount


def prepare(area: Area, existing_only: bool = False) -> tuple[Path, Path, list[str]]:
    """Copy the tree; make or update the session. Returns (tree, session path, tests)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    scratch, db_path = area.scratch, area.session
    tree = scratch / "tree"
    meta_path = scratch / "meta.json"
    make_copy(tree)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and db_path.exists() else {}
    modules_digest = digest(tree, area.modules)
    tests = area_tests(area, tree, existing_only)
    tests_digest = digest(tree, sorted({t.split("::")[0] for t in tests} | {"tests/conftest.py"}) + tests)
    config_digest = hashlib.sha256(
        json.dumps([area.modules, area.include_operators, area.exclude_operators]).encode()
    ).hexdigest()
    if not meta or meta.get("config") != config_digest:
        if meta:
            print(f"[{area.name}] the modules or operators of the area changed: starting afresh")
        init_session(area, tree, db_path)
    else:
        if meta.get("modules") != modules_digest:
            kept = init_session(area, tree, db_path, carry_over=True)
            print(f"[{area.name}] a module changed: kept the results of {kept} mutants whose line is unchanged")
        if meta.get("tests") != tests_digest:
            with use_db(str(db_path), WorkDB.Mode.open) as db:
                survivors = [i.job_id for i, r in db.completed_work_items if r.test_outcome == TestOutcome.SURVIVED]
            print(f"[{area.name}] the tests changed: running the {len(survivors)} survivors again")
            reset_results(db_path, survivors)
    meta_path.write_text(json.dumps({"modules": modules_digest, "tests": tests_digest, "config": config_digest}))
    return tree, db_path, tests


def run_piece(area: Area, budget_s: float, existing_only: bool = False) -> bool:
    """Run pending mutants until none are left or the budget is spent. True when the area is complete."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db

    tree, db_path, tests = prepare(area, existing_only)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(tree), _PYTHONPATH] if p)
    # One intra-op thread per test run (tests that need more set their own): a kernel's two threads wait for
    # each other at every barrier when another area's run holds the second core, which made the kernel
    # tests 4-5 times slower with two areas at once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    check_copy_is_imported(tree)
    command = test_command(tests, area)
    start = time.monotonic()
    cwd = os.getcwd()
    os.chdir(tree)
    try:
        print(f"[{area.name}] baseline: {command}", flush=True)
        base = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=area.timeout * 3)
        if base.returncode != 0:
            print(base.stdout[-3000:] + base.stderr[-3000:])
            print(f"[{area.name}] the tests fail without any mutant: fix them first; nothing run", flush=True)
            return False
        print(f"[{area.name}] baseline passes in {time.monotonic() - start:.0f} s", flush=True)
        with use_db(str(db_path), WorkDB.Mode.open) as db:
            pending = list(db.pending_work_items)
            total = db.num_work_items
            print(f"[{area.name}] {len(pending)} of {total} mutants to run", flush=True)
            for n, item in enumerate(pending, 1):
                if time.monotonic() - start > budget_s:
                    print(f"[{area.name}] budget spent: {len(pending) - n + 1} mutants left for the next run")
                    return False
                t0 = time.monotonic()
                result = mutate_and_test(item.mutations, command, area.timeout)
                db.set_result(item.job_id, result)
                m = item.mutations[0]
                print(
                    f"[{area.name}] {n}/{len(pending)} {m.module_path}:{m.start_pos[0]} {m.operator_name} "
                    f"-> {result.test_outcome or result.worker_outcome} ({time.monotonic() - t0:.1f} s)",
                    flush=True,
                )
        return True
    finally:
        os.chdir(cwd)


# --------------------------------------------------------------------------------------------------
# Report


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, (line, column), of every annotation in ``source``."""
    import ast

    spans = []
    for node in ast.walk(ast.parse(source)):
        notes = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            notes.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in notes if a is not None]
    return spans


def in_annotation(spans, mutation) -> bool:
    """A mutant inside an annotation: with ``from __future__ import annotations`` (every module here) nothing
    evaluates it, so a survivor there is equivalent; reported as such without an entry in equivalent.toml."""
    pos = tuple(mutation.start_pos)
    return any(start <= pos < end for start, end in spans)


def is_equivalent(equivalents: list[dict], module: str, operator: str, line: str) -> dict | None:
    for e in equivalents:
        if e["module"] == module and e["operator"] == operator and e["line"].strip() == line:
            return e
    return None


def report(area: Area, show: int | None = None) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    scratch, db_path = area.scratch, area.session
    tree = scratch / "tree"
    if not db_path.exists():
        print(f"[{area.name}] not run yet")
        return {}
    equivalents = load_equivalents()
    stats = {m: {"total": 0, "killed": 0, "survived": 0, "equivalent": 0, "pending": 0} for m in area.modules}
    survivors = []
    spans = {}
    for module in area.modules:
        source = scratch / "sources" / module
        spans[module] = annotation_spans((source if source.exists() else tree / module).read_text())
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            m = item.mutations[0]
            s = stats[str(m.module_path)]
            s["total"] += 1
            r = results.get(item.job_id)
            if r is None:
                s["pending"] += 1
            elif r.worker_outcome == WorkerOutcome.NO_TEST:
                s["total"] -= 1
            elif r.test_outcome == TestOutcome.SURVIVED:
                line = mutant_line(tree, m, r.diff)
                if in_annotation(spans[str(m.module_path)], m) or is_equivalent(
                    equivalents, str(m.module_path), m.operator_name, line
                ):
                    s["equivalent"] += 1
                else:
                    s["survived"] += 1
                    survivors.append((m, line, r))
            else:
                s["killed"] += 1
    survivors.sort(key=lambda t: (str(t[0].module_path), t[0].start_pos))
    if show is not None:
        m, line, r = survivors[show - 1]
        print(f"#{show} {m.module_path}:{m.start_pos[0]} {m.operator_name} (occurrence {m.occurrence})")
        print(r.diff)
        print(r.output[-4000:] if r.output else "")
        return stats
    print(f"\n[{area.name}] survivors not listed in {EQUIVALENT_FILE.relative_to(REPO)}:")
    for n, (m, line, r) in enumerate(survivors, 1):
        mutated = diff_lines(r.diff, "+")
        print(f"  #{n} {m.module_path}:{m.start_pos[0]} {m.operator_name}\n      {line}\n   -> {' / '.join(mutated)}")
    if not survivors:
        print("  none")
    print(f"[{area.name}] score per module (killed / (total - equivalent)):")
    for module, s in stats.items():
        done = s["total"] - s["pending"]
        scored = s["total"] - s["equivalent"] - s["pending"]
        pct = f"{100 * s['killed'] / scored:.1f} %" if scored else "-"
        print(
            f"  {module}: {s['killed']} killed / {s['total']} mutants, {s['survived']} survived, "
            f"{s['equivalent']} equivalent, {s['pending']} pending ({done} run); score {pct}"
        )
    return stats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--area", action="append", help="an area of mutation/areas.toml (repeatable; default: all)")
    p.add_argument("--budget-min", type=float, default=25.0, help="stop a piece after this many minutes (25)")
    p.add_argument("--report", action="store_true", help="print survivors and scores only; run nothing")
    p.add_argument("--show", type=int, help="with one --area: the diff and test output of survivor #N")
    p.add_argument("--list", action="store_true", help="list the areas")
    p.add_argument(
        "--existing-only",
        action="store_true",
        help="leave out tests/test_*_mutants_killed.py (what the rest of the tests kill); the next run without it "
        "runs the survivors again with them",
    )
    p.add_argument(
        "--rerun-timeouts",
        action="store_true",
        help="run again the mutants killed by a timeout (after a run was paused, which makes its mutant time out)",
    )
    args = p.parse_args(argv)
    areas = load_areas()
    if args.list:
        for a in areas.values():
            print(f"{a.name}: {' '.join(a.modules)}\n    tests: {' '.join(a.tests)}")
        return 0
    names = args.area or list(areas)
    unknown = [n for n in names if n not in areas]
    if unknown:
        raise SystemExit(f"unknown area(s) {unknown}; known: {sorted(areas)}")
    deadline = time.monotonic() + args.budget_min * 60
    for name in names:
        area = areas[name]
        if args.show is not None:
            report(area, show=args.show)
            continue
        if args.rerun_timeouts:
            print(f"[{name}] {rerun_timeouts(area)} mutants killed by a timeout are pending again")
        if not args.report:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"[{name}] not started: the budget is spent")
                continue
            run_piece(area, left, args.existing_only)
        report(area)
    return 0


if __name__ == "__main__":
    sys.exit(main())
