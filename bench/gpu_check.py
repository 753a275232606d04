"""``make gpu-check``: every check that needs a GPU, as one command planned to fit 8 minutes on one H100.

    make gpu-check                       # or: python3 bench/gpu_check.py
    make gpu-check GPU_CHECK_DRY_RUN=1   # or: python3 bench/gpu_check.py --dry-run: print the commands only

Steps, each under its own time budget (``BUDGETS``; the elapsed time of each is printed):

1. build: ``make build`` (.venv, requirements-dev.txt, the extension with nvcc), then ``nvidia-smi``, torch and
   CUDA versions, ``rgprune.backend()`` and the architectures compiled into the extension;
2. ``pytest -m cuda`` over tests/: the CUDA kernels against the reference on the device;
3. a reduced case set (``RGPRUNE_SIM_CASES=reduced``) of tests/test_cuda_sim.py under compute-sanitizer
   memcheck, racecheck and synccheck, restricted to rgprune's kernels;
4. ``rgprune bench --device cuda`` on resnet50, bert-base and synthetic-1b, rounds 1 and 5.

Writes ``bench/results/gpu-tests-<date>.txt`` (everything printed, with pass/fail counts per step) and
``bench/results/gpu-<date>.json`` (the three bench results merged into one ``rgprune-bench/1`` document),
prints a summary, and exits 1 if any step failed; a failing step never stops the ones after it.

Without a GPU (no working ``nvidia-smi``, or ``torch.cuda.is_available()`` false) it says so, runs what needs
none (the build, and tests/test_cuda_sim.py under the CPU simulator when that file exists), writes nothing under
bench/results/, and exits 0 unless one of those failed.

A machine without a package index (an offline GPU box with its own CUDA build of torch): when .venv does not exist
yet and the ``python3`` running this script has a CUDA torch, .venv is made on top of that python's packages
(a .pth file) and ``make build`` is told requirements-dev.txt is installed (``make -o .venv/.deps-installed``):
installing the pinned torch would need the network and several GB, more than the whole budget. A later
``make test`` on a machine with a network installs requirements-dev.txt into that .venv as usual.
``GPU_CHECK_VENV=pip`` forces plain ``make build``, ``GPU_CHECK_VENV=system`` the machine's torch.

Other knobs: ``TORCH_CUDA_ARCH_LIST`` (default here: the visible GPU's own architecture, the shortest build;
``GPU_CHECK_ARCH=default`` builds setup.py's default list instead), ``GPU_CHECK_BUDGETS=build=200,tests=120``
(seconds per step), ``GPU_CHECK_COPY_TO=DIR`` (also copy the two result files there).

Standard library only: it runs under the system python3, before .venv exists.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
RESULTS = ROOT / "bench" / "results"
SIM_TESTS = "tests/test_cuda_sim.py"
# compute-sanitizer's target until tests/test_cuda_sim.py exists: the float32 CUDA cases of the kernel tests
SANITIZE_FALLBACK = ["tests/test_kernels.py", "tests/test_radix_histogram.py", "-k", "float32"]
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck")
# only rgprune's kernels are instrumented (torch's run at full speed): the kernels live in namespace rgprune
SANITIZER_FILTER = os.environ.get("GPU_CHECK_SANITIZER_FILTER", "kns=rgprune")
BENCH_METHODS = "torch_prune,naive,naive_topk,rgprune"  # the reference sorts on the host: minutes, no GPU target
BENCH_MODELS = {
    "resnet50": ["--slow-after", "2"],
    "bert-base": ["--slow-after", "2"],
    # 1e9 float32 weights: torch.prune and the naive ways take seconds a run, so fewer repetitions
    "synthetic-1b": ["--reps", "3", "--slow-reps", "1", "--slow-after", "1"],
}
# seconds per step, guessed (nothing has run on a GPU yet); they add up to less than the 8 minutes the whole check
# must fit on one H100. GPU_CHECK_BUDGETS overrides them.
BUDGETS = {
    "build": 110,
    "info": 15,
    "tests": 75,
    "memcheck": 40,
    "racecheck": 35,
    "synccheck": 30,
    "bench resnet50": 35,
    "bench bert-base": 40,
    "bench synthetic-1b": 65,
}
TOTAL_LIMIT = 480  # the budgets leave ~30 s of it for the probes between steps and the summary
NO_GPU_SIM_BUDGET = 900  # the simulator on a CPU machine: no 8-minute constraint there
PYTEST = ["-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-rfE"]

INFO_SCRIPT = """
import torch, rgprune
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, f"sm_{p.major}{p.minor}", f"{p.total_memory / 2**30:.0f} GiB",
          p.multi_processor_count, "SMs;", torch.cuda.device_count(), "device(s)")
print("torch built for:", " ".join(torch.cuda.get_arch_list()))
print("rgprune", rgprune.__version__, "backend:", rgprune.backend(), "from", rgprune.__file__)
raise SystemExit(0 if torch.cuda.is_available() and rgprune.backend() == "cuda+cpp" else 1)
"""


def budgets() -> dict:
    out = dict(BUDGETS)
    for item in filter(None, os.environ.get("GPU_CHECK_BUDGETS", "").split(",")):
        name, _, seconds = item.partition("=")
        name = name.strip().replace("_", " ")
        if name not in out or not seconds.strip().isdigit():
            sys.exit(f"GPU_CHECK_BUDGETS: {item!r}: use NAME=SECONDS with NAME one of {', '.join(out)}")
        out[name] = int(seconds)
    return out


def source_digest() -> str:
    """One hash of the kernel sources and the build script (by relative path and content), to tell which source a
    log was made from where the checkout has no .git."""
    digest = hashlib.sha256()
    for f in sorted([*(ROOT / "csrc").rglob("*"), ROOT / "setup.py"]):
        if f.is_file():
            digest.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def rel(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def budget_line(budget: dict) -> str:
    items = ", ".join(f"{k} {v}" for k, v in budget.items())
    return f"budgets (s): {items}; {sum(budget.values())} s in all (the check must fit {TOTAL_LIMIT} s)"


def quiet(cmd, timeout=30) -> tuple[int, str]:
    """Runs a short probe; (returncode, stdout+stderr), 127 when the program is missing."""
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, errors="replace")
    except FileNotFoundError:
        return 127, f"{cmd[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{cmd[0]}: no answer in {timeout} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    # after PATH's own: the bin folder of the python running this script (its ninja) and the CUDA toolkit's
    path = env.get("PATH", os.defpath).split(os.pathsep)
    path += [d for d in (os.path.dirname(sys.executable), "/usr/local/cuda/bin") if os.path.isdir(d) and d not in path]
    env["PATH"] = os.pathsep.join(path)
    return env


def find_sanitizer(env) -> str | None:
    found = shutil.which("compute-sanitizer", path=env["PATH"])
    if found:
        return found
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    roots += sorted(str(p) for p in Path("/usr/local").glob("cuda-*"))
    for root in filter(None, roots):
        for sub in ("bin", "compute-sanitizer"):
            candidate = Path(root) / sub / "compute-sanitizer"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def gpu_arch_from_smi() -> str | None:
    """The visible GPUs' compute capabilities as a TORCH_CUDA_ARCH_LIST (``9.0``), None when unknown."""
    rc, out = quiet(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"])
    caps = sorted({line.strip() for line in out.splitlines() if re.fullmatch(r"\d+\.\d+", line.strip())})
    return ";".join(caps) if rc == 0 and caps else None


def system_torch() -> str | None:
    """``torch X CUDA Y`` when the python running this script has a CUDA build of torch."""
    rc, out = quiet([sys.executable, "-c", "import torch; print(torch.__version__, torch.version.cuda)"], 120)
    words = out.splitlines()[-1].split() if rc == 0 and out else []
    return f"torch {words[0]} (CUDA {words[1]})" if len(words) == 2 and words[1] != "None" else None


def pytest_counts(lines) -> str:
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|error|errors|skipped|deselected|no tests ran)\b.* in [\d.]+s", line):
            return line.strip("= ").strip()
    return "no pytest summary line"


def sanitizer_errors(lines) -> int | None:
    found = [int(m.group(1)) for line in lines if (m := re.search(r"ERROR SUMMARY: (\d+) error", line))]
    return sum(found) if found else None


def sanitizer_counts(lines) -> str:
    errors = sanitizer_errors(lines)
    return f"{pytest_counts(lines)}; sanitizer errors: {'?' if errors is None else errors}"


class Action:
    """A step's in-process part (no subprocess): ``describe`` is printed, ``fn()`` runs; an exception fails it."""

    def __init__(self, describe: str, fn):
        self.describe, self.fn = describe, fn


class Check:
    """Runs the steps, tees their output to the console and a log, and records each step's result."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.steps = []
        self.env = child_env()
        self.log_lines = []
        self.log_file = None  # bench/results/gpu-tests-<date>.txt once a GPU is known to be there

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.log_lines.append(text)
        if self.log_file:
            self.log_file.write(text + "\n")
            self.log_file.flush()

    def keep_log(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(path, "w")  # closed at the end of main
        self.log_file.write("\n".join(self.log_lines) + "\n")
        self.log_file.flush()

    def run(self, cmd, budget: float, env: dict | None = None) -> tuple[int | None, list]:
        """Runs ``cmd`` in its own process group; (returncode or None on timeout, output lines)."""
        shown = " ".join(shlex.quote(str(c)) for c in cmd)
        self.say(f"$ {shown}")
        lines = []
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                cwd=ROOT,
                env=env or self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            self.say(f"{cmd[0]}: not found")
            return 127, [f"{cmd[0]}: not found"]

        def pump():
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                self.say(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=max(budget, 1))
        except subprocess.TimeoutExpired:
            self.say(f"gpu-check: {budget:.0f} s budget spent: stopping {shown}")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = None
        reader.join(timeout=5)
        return rc, lines

    def step(self, name: str, budget: float, cmds, counts=None, env=None, optional=()) -> dict:
        """Runs ``cmds`` in order under one budget, stopping at the first failure (``optional`` commands'
        failures are printed, not counted). ``counts(lines)`` -> the step's counts for the summary."""
        self.say(f"\n===== {name} (budget {budget:.0f} s) =====")
        start = time.monotonic()
        status, all_lines = "PASS", []
        for i, cmd in enumerate(cmds):
            left = budget - (time.monotonic() - start)
            if left <= 0:
                status = f"TIMEOUT (budget {budget:.0f} s)"
                break
            if isinstance(cmd, Action):
                self.say(cmd.describe)
                try:
                    cmd.fn()
                    rc, lines = 0, []
                except Exception as exc:
                    rc, lines = 1, [f"{type(exc).__name__}: {exc}"]
                    self.say(lines[0])
            else:
                rc, lines = self.run(cmd, left, env)
            all_lines += lines
            if rc is None:
                status = f"TIMEOUT (budget {budget:.0f} s)"
                break
            if rc != 0 and i not in optional:
                status = f"FAIL (exit {rc})"
                break
        seconds = time.monotonic() - start
        record = {"step": name, "status": status, "seconds": round(seconds, 1), "budget_s": budget}
        record["counts"] = counts(all_lines) if counts else ""
        self.steps.append(record)
        counted = f"; {record['counts']}" if record["counts"] else ""
        self.say(f"----- {name}: {status} in {seconds:.1f} s (at {time.monotonic() - self.t0:.0f} s){counted}")
        return record

    def skip(self, name: str, why: str) -> None:
        self.steps.append({"step": name, "status": f"SKIPPED ({why})", "seconds": 0.0, "counts": ""})
        self.say(f"\n===== {name}: SKIPPED ({why})")

    def failed(self) -> list:
        return [s for s in self.steps if s["status"].startswith(("FAIL", "TIMEOUT"))]

    def summary(self) -> None:
        self.say(f"\n===== summary ({time.monotonic() - self.t0:.0f} s in all) =====")
        width = max(len(s["status"]) for s in self.steps) if self.steps else 0
        for s in self.steps:
            self.say(f"{s['step']:<19} {s['status']:<{width}} {s['seconds']:>6.1f} s  {s['counts']}".rstrip())


# ----------------------------------------------------------------------------------------------------------
# the steps' commands (shared by the run and --dry-run)
# ----------------------------------------------------------------------------------------------------------


def venv_site_packages() -> Path:
    return VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


PTH_FILE = venv_site_packages() / "_gpu_check_base_site.pth"  # marks a .venv made on this python's packages


def pth_text() -> str:
    """A .pth line per site-packages folder of the python running this script: .venv sees its packages (torch)
    after its own, .pth files in them included (``site.addsitedir``)."""
    dirs = [d for d in dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]]) if os.path.isdir(d)]
    return "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)


def write_pth() -> None:
    PTH_FILE.write_text(pth_text())


def build_commands(mode: str) -> list:
    """``make build``; on an offline GPU box (``mode == "system"``) .venv is made over this python's packages first
    (unless it was already), and make is told requirements-dev.txt is installed (``-o``: it does not remake that
    stamp)."""
    if mode != "system":
        return [["make", "build"]]
    make = ["make", "-o", ".venv/.deps-installed", "build"]
    if PY.exists() and PTH_FILE.exists():
        return [make]
    return [
        [sys.executable, "-m", "venv", "--without-pip", str(VENV.relative_to(ROOT))],
        Action(f"write {PTH_FILE.relative_to(ROOT)}:\n" + pth_text().rstrip(), write_pth),
        make,
    ]


def info_commands() -> list:
    """nvidia-smi, torch / CUDA / rgprune.backend(), nvcc, and the architectures in the built extension."""
    ext = sorted(ROOT.glob("rgprune/_C*.so"))
    ext_name = str(ext[0].relative_to(ROOT)) if ext else "rgprune/_C*.so"
    return [["nvidia-smi"], [PY, "-c", INFO_SCRIPT], ["nvcc", "--version"], ["cuobjdump", "--list-elf", ext_name]]


def test_command() -> list:
    # -o timeout=60: no CUDA test should take a minute; one that hangs fails alone instead of using the budget
    return [PY, *PYTEST, "-m", "cuda", "--continue-on-collection-errors", "-o", "timeout=60", "tests/"]


def sanitize_targets() -> list:
    return [SIM_TESTS] if (ROOT / SIM_TESTS).exists() else list(SANITIZE_FALLBACK)


def sanitizer_command(sanitizer: str, tool: str) -> list:
    return [
        sanitizer,
        "--tool",
        tool,
        "--error-exitcode",
        "1",
        "--kernel-name",
        SANITIZER_FILTER,
        # torch itself makes CUDA API calls that fail on purpose (probes); a failed launch of ours raises in the test
        "--report-api-errors",
        "no",
        "--target-processes",
        "all",
        PY,
        *PYTEST,
        "-m",
        "cuda",
        "-o",
        "timeout=0",
        *sanitize_targets(),
    ]


def sanitizer_env(base: dict, tool: str) -> dict:
    env = dict(base, RGPRUNE_SIM_CASES="reduced")
    if tool == "memcheck":
        env["PYTORCH_NO_CUDA_MEMORY_CACHING"] = "1"  # exact allocations: a read past a tensor's end is caught
    return env


def bench_command(model: str, json_path: Path) -> list:
    return [
        PY,
        "-m",
        "rgprune.cli",
        "bench",
        "--model",
        model,
        "--device",
        "cuda",
        "--rounds",
        "1,5",
        "--methods",
        BENCH_METHODS,
        "--no-progress",
        *BENCH_MODELS[model],
        "--json",
        json_path,
    ]


# ----------------------------------------------------------------------------------------------------------
# the bench results: one document, and a few lines for the summary
# ----------------------------------------------------------------------------------------------------------


def merge_bench(results: list, failures: list) -> dict | None:
    """One ``rgprune-bench/1`` document from the per-model documents ``results`` ([(model, doc)]), the way
    ``bench.compare`` writes a multi-model run (bench/readme_table.py renders it); each run's own command,
    times, settings and copy bandwidth under ``gpu_check_runs``. ``failures``: errors of runs without a result."""
    if not results:
        return None
    merged = json.loads(json.dumps(results[0][1]))
    merged.update(models={}, errors=[], targets=[])
    runs = []
    for model, doc in results:
        merged["models"].update(doc.get("models", {}))
        merged["errors"] += doc.get("errors", [])
        merged["targets"] += doc.get("targets", [])
        runs.append(
            {
                "model": model,
                "command": doc.get("command"),
                "started": doc.get("started"),
                "finished": doc.get("finished"),
                "settings": doc.get("settings"),
                "copy_bandwidth": doc.get("copy_bandwidth"),
            }
        )
    merged["errors"] += failures
    judged = [t["met"] for t in merged["targets"] if t.get("met") is not None]
    merged["all_targets_met"] = bool(judged) and all(judged) and not merged["errors"]
    merged["settings"]["models"] = list(merged["models"])
    merged["command"] = "make gpu-check: " + " ; ".join(str(r["command"]) for r in runs)
    merged["finished"] = results[-1][1].get("finished")
    merged["gpu_check_runs"] = runs
    return merged


def bench_lines(doc: dict) -> list:
    out = []
    for name, res in doc.get("models", {}).items():
        for rkey, rnd in res.get("rounds", {}).items():
            rg = rnd.get("methods", {}).get("rgprune", {})
            floor = res.get("floor", {}).get(rkey, {}).get("times_floor")
            vs = rnd.get("speedup", {}).get("vs_torch_prune")
            out.append(
                f"  {name} {rkey}: rgprune {rg.get('median_s', float('nan')) * 1e3:.2f} ms"
                + (f", {floor:.2f}x the bandwidth floor" if floor is not None else ", floor not measured")
                + (f", {vs:.1f}x faster than torch.prune" if vs is not None else "")
            )
    for t in doc.get("targets", []):
        met = {True: "met", False: "MISSED", None: "not measured"}[t.get("met")]
        measured = t.get("measured")
        shown_value = f"{measured:.3g}" if isinstance(measured, float) else str(measured)
        out.append(f"  target {t['id']}: {met} (measured {shown_value}, required {t.get('required')})")
    return out


# ----------------------------------------------------------------------------------------------------------


def shown(cmd) -> str:
    if isinstance(cmd, Action):
        return cmd.describe.replace("\n", "\n      ")
    return "$ " + " ".join(shlex.quote(str(c)) for c in cmd).replace(str(ROOT) + "/", "")


def dry_run(budget: dict) -> int:
    """Prints what a machine with a GPU runs, step by step, without running anything."""
    date = datetime.date.today().isoformat()
    print("gpu-check --dry-run: the commands a machine with a GPU runs (nothing is run here)")
    print(budget_line(budget))
    print("every command gets HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1, and PATH += this python's")
    print("bin and /usr/local/cuda/bin. A GPU is there when `nvidia-smi -L` lists one and, after the build,")
    print("torch.cuda.is_available() in .venv.")
    print("\n[build] with TORCH_CUDA_ARCH_LIST=<the GPU's compute capability from nvidia-smi, e.g. 9.0> unless set")
    print("  when .venv exists (and was not made as below), GPU_CHECK_VENV=pip, or this python has no CUDA torch:")
    for cmd in build_commands("pip"):
        print("    " + shown(cmd))
    print(f"  else (no .venv, {sys.executable} has a CUDA torch: an offline GPU machine):")
    for cmd in build_commands("system"):
        print("    " + shown(cmd))
    sanitizer = find_sanitizer(child_env()) or "compute-sanitizer"
    steps = [("info", info_commands()), ("tests", [test_command()])]
    for tool in SANITIZER_TOOLS:
        env = "RGPRUNE_SIM_CASES=reduced " + ("PYTORCH_NO_CUDA_MEMORY_CACHING=1 " if tool == "memcheck" else "")
        steps.append((tool, [Action(env + shown(sanitizer_command(sanitizer, tool))[2:], None)]))
    for model in BENCH_MODELS:
        tmp_json = Path(tempfile.gettempdir()) / "gpu-check-XXXXXX" / f"bench-{model}.json"
        steps.append((f"bench {model}", [bench_command(model, tmp_json)]))
    for name, cmds in steps:
        print(f"\n[{name}, {budget[name]} s]")
        for cmd in cmds:
            print("  " + (("$ " + cmd.describe) if isinstance(cmd, Action) else shown(cmd)))
    if not (ROOT / SIM_TESTS).exists():
        print(f"\n(compute-sanitizer runs {' '.join(SANITIZE_FALLBACK)} until {SIM_TESTS} exists)")
    print(f"\nthen: the bench-*.json merged into bench/results/gpu-{date}.json; everything printed, with counts per")
    print(f"step, in bench/results/gpu-tests-{date}.txt; a summary; exit 1 if a step failed or ran out of time.")
    print(f"Without a GPU: the build, then `{shown([PY, *PYTEST, SIM_TESTS])[2:]}` (when that file exists);")
    print("nothing is written under bench/results/, exit 0 unless one of those failed.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the commands a GPU machine runs; run none")
    args = parser.parse_args(argv)
    budget = budgets()
    if args.dry_run or os.environ.get("GPU_CHECK_DRY_RUN", "") not in ("", "0"):
        return dry_run(budget)
    check = Check()
    no_gpu = introduce(check, budget)
    no_gpu = build(check, budget, no_gpu)
    if no_gpu is not None:
        return finish_without_gpu(check, no_gpu)
    date = datetime.date.today().isoformat()
    log_path = RESULTS / f"gpu-tests-{date}.txt"
    check.keep_log(log_path)
    check.say(f"(this log: {rel(log_path)})")
    check.step("info", budget["info"], info_commands(), optional=(2, 3))  # what was built, what runs it
    check.step("tests", budget["tests"], [test_command()], counts=pytest_counts)
    sanitize(check, budget)
    json_path = bench(check, budget, RESULTS / f"gpu-{date}.json")
    check.summary()
    failed = check.failed()
    check.say(f"gpu-check: {'FAILED: ' + ', '.join(s['step'] for s in failed) if failed else 'all steps passed'}")
    check.say(f"results: {rel(log_path)}" + (f", {rel(json_path)}" if json_path else ""))
    check.log_file.close()
    copy_to = os.environ.get("GPU_CHECK_COPY_TO")
    if copy_to:
        for p in (log_path, json_path):
            if p is not None and p.exists():
                shutil.copy2(p, copy_to)
    return 1 if failed else 0


def introduce(check: Check, budget: dict) -> str | None:
    """Says what runs where; returns why there is no GPU (None: nvidia-smi lists one)."""
    rc, head = quiet(["git", "log", "-1", "--format=%h %s"])
    dirty = quiet(["git", "status", "--porcelain", "--untracked-files=no"])[1]
    check.say(f"gpu-check {datetime.datetime.now().isoformat(timespec='seconds')} on {os.uname().nodename}")
    check.say(f"source: {head if rc == 0 else 'not a git checkout'}{' (with uncommitted changes)' if dirty else ''}")
    check.say(f"sha256 of csrc/ and setup.py: {source_digest()}")
    check.say(budget_line(budget))
    smi_rc, smi_out = quiet(["nvidia-smi", "-L"])
    check.say(f"nvidia-smi -L: {smi_out}")
    if smi_rc == 127:
        return "no nvidia-smi on this machine (no NVIDIA driver)"
    if smi_rc != 0 or "GPU" not in smi_out:
        return f"nvidia-smi -L lists no GPU (exit {smi_rc}: {smi_out[-300:]})"
    return None


def venv_mode(check: Check, no_gpu: str | None) -> str:
    """How .venv is made: "pip" (make build installs requirements-dev.txt) or "system" (on the packages of this
    python's CUDA torch: an offline GPU machine)."""
    choice = os.environ.get("GPU_CHECK_VENV", "auto")
    if PY.exists() and PTH_FILE.exists() and choice != "pip":
        check.say(f"{VENV.name} was made by gpu-check on {sys.executable}'s packages: make build, again without pip")
        return "system"
    if PY.exists():
        check.say(f"{VENV.name} exists: make build")
        return "pip"
    if choice == "system" or (choice == "auto" and no_gpu is None):
        found = system_torch()
        if found:
            check.say(
                f"no {VENV.name} yet and {sys.executable} has {found}: {VENV.name} is made on top of its packages, "
                "requirements-dev.txt is not installed (no package index needed; the pinned torch would not fit "
                "the budget)"
            )
            return "system"
        if choice == "system":
            check.say(f"GPU_CHECK_VENV=system but {sys.executable} has no CUDA build of torch: make build")
    return "pip"


def build(check: Check, budget: dict, no_gpu: str | None) -> str | None:
    """The build step (for the visible GPU's architecture unless told otherwise); returns why there is no GPU
    to check (None: torch sees one)."""
    mode = venv_mode(check, no_gpu)
    build_env = dict(check.env)
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and os.environ.get("GPU_CHECK_ARCH") != "default":
        native = gpu_arch_from_smi() if no_gpu is None else None
        if native:
            build_env["TORCH_CUDA_ARCH_LIST"] = native
            check.say(f"TORCH_CUDA_ARCH_LIST={native}: the visible GPU only (GPU_CHECK_ARCH=default: setup.py's list)")
    check.step("build", budget["build"], build_commands(mode), env=build_env)
    if no_gpu is None and check.steps[-1]["status"] == "PASS":  # a failed build on a GPU machine is a GPU failure
        rc, out = quiet([PY, "-c", "import torch; print(torch.__version__, torch.cuda.is_available())"], 120)
        if rc != 0 or not out.splitlines() or not out.splitlines()[-1].endswith("True"):
            return f"nvidia-smi sees a GPU but torch.cuda.is_available() is not True in {VENV.name}: {out[-300:]}"
    return no_gpu


def sanitize(check: Check, budget: dict) -> None:
    """compute-sanitizer's tools on the reduced case set (skipped, said, where the toolkit lacks it)."""
    sanitizer = find_sanitizer(check.env)
    if sanitizer is None:
        check.say("\ncompute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda*/bin): sanitizer steps skipped")
    for tool in SANITIZER_TOOLS:
        if sanitizer is None:
            check.skip(tool, "compute-sanitizer not found")
            continue
        cmd, env = sanitizer_command(sanitizer, tool), sanitizer_env(check.env, tool)
        check.step(tool, budget[tool], [cmd], counts=sanitizer_counts, env=env)


def bench(check: Check, budget: dict, json_path: Path) -> Path | None:
    """rgprune bench on each model, merged into json_path; returns it (None: no result to write)."""
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    results, failures = [], []
    for model in BENCH_MODELS:
        path = tmp / f"bench-{model}.json"
        rec = check.step(f"bench {model}", budget[f"bench {model}"], [bench_command(model, path)])
        if path.exists():
            doc = json.loads(path.read_text())
            results.append((model, doc))
            judged = [t.get("met") for t in doc.get("targets", [])]
            rec["counts"] = (
                f"{len(doc.get('errors', []))} measurement errors; targets: {judged.count(True)} met, "
                f"{judged.count(False)} missed"
            )
        else:
            failures.append(f"{model}: {rec['status']}, no result")
    shutil.rmtree(tmp, ignore_errors=True)
    merged = merge_bench(results, failures)
    if merged is None:
        check.say("\nno bench result to write")
        return None
    json_path.write_text(json.dumps(merged, indent=1) + "\n")
    check.say(f"\nwrote {rel(json_path)}:")
    for line in bench_lines(merged):
        check.say(line)
    return json_path


def finish_without_gpu(check: Check, why: str) -> int:
    check.say(f"\nNO GPU: {why}")
    check.say("Only what needs no GPU runs: the build (above) and the CUDA simulator's tests; nothing is written")
    check.say("under bench/results/. Run `make gpu-check` on a machine with an NVIDIA GPU for the real checks.")
    if (ROOT / SIM_TESTS).exists():
        check.step("simulator tests", NO_GPU_SIM_BUDGET, [[PY, *PYTEST, SIM_TESTS]], counts=pytest_counts)
    else:
        check.skip("simulator tests", f"{SIM_TESTS} does not exist yet")
    check.summary()
    failed = check.failed()
    check.say(f"gpu-check without a GPU: {'FAILED: ' + ', '.join(s['step'] for s in failed) if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
