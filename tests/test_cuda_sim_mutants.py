"""The simulation tests fail when the CUDA kernels are wrong: bugs planted in a copy of csrc/cuda make the cases of
tests/test_cuda_sim.py fail, under the simulator, with the reference comparison or a simulator check.

All mutants live in one build of the copy, each behind a run-time selector (``rgp_mutant``; 0 runs the code as
written), so the suite pays for one compilation: every planted statement becomes
``if (rgp_mutant == N) { mutated } else { original }``, and every ``__syncthreads();`` of csrc/cuda becomes
``if (rgp_mutant != ALL_BARRIERS) __syncthreads();``.
"""

from __future__ import annotations

import ctypes
import shutil

import pytest
import torch
from cuda_sim.build import SIM_DIR, build_library
from cuda_sim.cases import DTYPES, check_all_ops, check_key_buffer, check_split_ties_under_every_schedule, make_case
from cuda_sim.ops import SCHEDULES, SimulatedOps

# name: (file under csrc/cuda, statement as written, the planted bug)
MUTANTS = {
    "tie rank off by one": (
        "kernels.cuh",
        "if (rank++ >= n_ties) survive |= t & (~t + 1u);",
        "if (rank++ > n_ties) survive |= t & (~t + 1u);",
    ),
    "barrier before warp_ties is rewritten removed": (
        "kernels.cuh",
        "__syncthreads();  // warp_ties is rewritten by the next tile",
        ";",
    ),
    "barrier in divergent code": (
        "survivor_stats.cuh",
        "if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;\n  __syncthreads();",
        "if (threadIdx.x % 32 == 0) { scratch[threadIdx.x / 32] = v; __syncthreads(); }",
    ),
    "wrong warp mask": (
        "kernels.cuh",
        "word |= __shfl_xor_sync(kFullMask, word, offset);",
        "word |= __shfl_xor_sync(0x0000ffffu, word, offset);",
    ),
    "gathered keys trusted after an overflow": (
        "kernels.cuh",
        "state->from_keys = unsigned(b) >= state->gather_lo && unsigned(b) <= state->gather_hi &&\n"
        "                       state->gathered <= static_cast<unsigned long long>(step.key_capacity);",
        "state->from_keys = unsigned(b) >= state->gather_lo && unsigned(b) <= state->gather_hi;",
    ),
    "sign ignored by masks_where_one_ (-1.0 read as 1)": (
        "kernels.cuh",
        "bits |= unsigned(p.v[j] == K::one) << j;",
        "bits |= unsigned(K::key(p.v[j]) == K::one) << j;",
    ),
    "a tensor's last partial word of ones never stored": (
        "kernels.cuh",
        "if (i < ch.end && (i & 31) == 0) ch.mask[i >> 5] = word;",
        "if (i + 32 <= ch.end && (i & 31) == 0) ch.mask[i >> 5] = word;",
    ),
}
ALL_BARRIERS = len(MUTANTS) + 1  # the selector of "every __syncthreads() removed"
SELECTOR = 'int rgp_mutant = 0;\nextern "C" void rgp_sim_set_mutant(int m) { rgp_mutant = m; }\n'


def plant(root, source_root):
    """A copy of source_root's csrc/ under root with every mutant planted behind the selector."""
    shutil.copytree(source_root / "csrc", root / "csrc")
    cuda = root / "csrc" / "cuda"
    for number, (name, (file, original, mutated)) in enumerate(MUTANTS.items(), start=1):
        path = cuda / file
        text = path.read_text()
        assert text.count(original) == 1, f"the statement of mutant {name!r} is not in {file} exactly once"
        planted = f"if (rgp_mutant == {number}) {{\n{mutated}\n}} else {{\n{original}\n}}"  # lines: comments end
        path.write_text(text.replace(original, planted))
    for path in cuda.glob("*.cuh"):
        text = path.read_text().replace("__syncthreads();", f"if (rgp_mutant != {ALL_BARRIERS}) __syncthreads();")
        path.write_text("extern int rgp_mutant;\n" + text)
    (root / "mutant.cpp").write_text(SELECTOR)


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    from cuda_sim.ops import REPO

    root = tmp_path_factory.mktemp("mutants")
    plant(root, REPO)
    sources = [SIM_DIR / "ops_sim.cpp", root / "mutant.cpp"]
    sim = SimulatedOps(build_library("rgprune_cuda_sim_mutants", sources, root=root, out_dir=root / "build"))
    sim.lib.rgp_sim_set_mutant.argtypes = [ctypes.c_int]
    return sim


def run_simulation_tests(sim) -> str | None:
    """A selection of the simulation tests; the first failure's message, or None when all pass."""
    # warp-greedy first: the schedule that exposes a missing barrier before a per-warp array is rewritten
    checks = [lambda d=d: check_split_ties_under_every_schedule(sim, d, SCHEDULES[::-1]) for d in DTYPES[::3]]
    checks += [lambda: check_key_buffer(sim, torch.float32, 8)]
    checks += [lambda: check_all_ops(sim, make_case("sizes", torch.float16, 0), "")]
    for check in checks:
        try:
            check()
        except Exception as e:  # AssertionError from a comparison, SimulationError from a simulator check
            return f"{type(e).__name__}: {e}"
    return None


def test_the_mutant_build_as_written_passes(mutants):
    """Guards against a mutation harness that fails everything (then the tests below prove nothing)."""
    mutants.lib.rgp_sim_set_mutant(0)
    assert run_simulation_tests(mutants) is None


@pytest.mark.parametrize("number", range(1, ALL_BARRIERS + 1), ids=[*MUTANTS, "every __syncthreads removed"])
def test_planted_bug_fails_the_simulation_tests(mutants, number):
    """Guards against simulation tests too weak to see a broken kernel: each planted bug must fail them."""
    mutants.lib.rgp_sim_set_mutant(number)
    try:
        failure = run_simulation_tests(mutants)
    finally:
        mutants.lib.rgp_sim_set_mutant(0)
    assert failure is not None, "the planted bug went unnoticed"
