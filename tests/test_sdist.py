"""The source distribution holds what building rgprune._C reads: setuptools puts only the listed .cpp/.cu sources
in an sdist, so without MANIFEST.in the kernels' headers and setup.py's build_support/ were missing and
`pip install rgprune-*.tar.gz` failed to compile."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdist")
    # egg_info's folder goes to the temp dir too, so the checkout is left as it was
    cmd = [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out), "sdist", "-d", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RGPRUNE_SKIP_EXT": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    (archive,) = out.glob("rgprune-*.tar.gz")
    return archive


def build_inputs() -> list[str]:
    """Every file under csrc/ and build_support/ (sources, headers, the arch chooser), relative to the root."""
    files = [p for d in ("csrc", "build_support") for p in (ROOT / d).rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(ROOT)) for p in files if "__pycache__" not in p.parts)


def test_the_sdist_holds_every_kernel_source_header_and_build_helper(sdist):
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    inputs = build_inputs()
    assert any(n.endswith(".h") for n in inputs) and any(n.endswith(".cuh") for n in inputs)
    missing = [n for n in inputs if n not in names]
    assert not missing, f"{top} lacks {missing}: list them in MANIFEST.in"
    assert {"setup.py", "pyproject.toml", "rgprune/__init__.py", "rgprune/ops.py"} <= names


@pytest.mark.slow
def test_the_cpu_kernels_build_from_the_unpacked_sdist(sdist, tmp_path):
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = tmp_path.glob("rgprune-*")
    env = {**os.environ, "RGPRUNE_CUDA": "0", "MAX_JOBS": "2"}
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((src / "rgprune").glob("_C*.so"))
