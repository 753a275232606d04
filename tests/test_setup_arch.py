"""setup.py's default TORCH_CUDA_ARCH_LIST (build_support/cuda_arch.py) on made-up torch and nvcc answers: no GPU,
toolkit or build needed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_support.cuda_arch import choose_arch_list, default_arch_list, parse_archs

# nvcc 13.0's `--list-gpu-code` and `--list-gpu-arch` (it dropped sm_70 and older)
NVCC13_CODE = "sm_75 sm_80 sm_86 sm_87 sm_88 sm_89 sm_90 sm_100 sm_110 sm_103 sm_120 sm_121".split()
NVCC13_ARCH = [c.replace("sm_", "compute_") for c in NVCC13_CODE]
# nvcc 12.4's (before sm_100)
NVCC124_CODE = "sm_50 sm_52 sm_53 sm_60 sm_61 sm_62 sm_70 sm_72 sm_75 sm_80 sm_86 sm_87 sm_89 sm_90".split()
NVCC124_ARCH = [c.replace("sm_", "compute_") for c in NVCC124_CODE]
TORCH_CU130 = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"  # torch 2.14.1+cu130's _cuda_getArchFlags()
TORCH_CU126 = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90"


def test_torch_cu130_with_nvcc13_keeps_every_torch_arch_and_ptx_on_the_newest():
    chosen, why = choose_arch_list(TORCH_CU130, NVCC13_CODE, NVCC13_ARCH)
    assert chosen == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert "dropped" not in why


def test_turing_and_ampere_are_built_when_torch_has_them():
    # the old fixed default (8.0;9.0+PTX) had no cubin for sm_75 (T4) and no PTX it could JIT there
    chosen, _ = choose_arch_list(TORCH_CU126, NVCC13_CODE, NVCC13_ARCH)
    archs = chosen.split(";")
    assert "7.5" in archs and "8.0" in archs


def test_archs_nvcc_lacks_are_dropped_and_named():
    chosen, why = choose_arch_list(TORCH_CU126, NVCC13_CODE, NVCC13_ARCH)
    assert chosen == "7.5;8.0;8.6;9.0+PTX"
    assert "dropped" in why and "5.0" in why and "6.0" in why and "7.0" in why


def test_an_older_nvcc_keeps_volta_and_drops_what_it_cannot_compile():
    assert choose_arch_list(TORCH_CU126, NVCC124_CODE, NVCC124_ARCH)[0] == "5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX"
    chosen, why = choose_arch_list(TORCH_CU130, NVCC124_CODE, NVCC124_ARCH)
    assert chosen == "7.5;8.0;8.6;9.0+PTX"
    assert "10.0" in why and "12.0" in why


@pytest.mark.parametrize("user", ["8.9", "7.0;7.5+PTX", "native", "Ampere"])
def test_the_users_list_is_kept_as_given(user):
    assert choose_arch_list(TORCH_CU130, NVCC13_CODE, NVCC13_ARCH, user_value=user) == (user, "set by the user")
    assert default_arch_list("/nonexistent/nvcc", {"TORCH_CUDA_ARCH_LIST": user}) == (user, "set by the user")


def test_an_empty_user_value_counts_as_unset():
    assert choose_arch_list(TORCH_CU130, NVCC13_CODE, NVCC13_ARCH, user_value=" ")[0].startswith("7.5;")


def test_unknown_nvcc_lists_take_torchs_list():
    chosen, why = choose_arch_list(TORCH_CU130, None, None)
    assert chosen == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert "unknown" in why


def test_no_ptx_when_nvcc_has_no_virtual_arch_for_the_newest():
    chosen, why = choose_arch_list("sm_80 sm_90", ["sm_80", "sm_90"], ["compute_80"])
    assert chosen == "8.0;9.0" and "no PTX" in why


def test_nothing_to_choose_leaves_torchs_default():
    assert choose_arch_list("", NVCC13_CODE)[0] is None  # a CPU build of torch
    assert choose_arch_list(None, NVCC13_CODE)[0] is None
    chosen, why = choose_arch_list("sm_50 sm_60", NVCC13_CODE, NVCC13_ARCH)  # nvcc knows none of them
    assert chosen is None and "5.0" in why


def test_parse_archs_reads_torch_and_nvcc_spellings():
    assert parse_archs("sm_90a compute_90 sm_100 sm_75 sm_121 bogus") == [(7, 5), (9, 0), (10, 0), (12, 1)]
    assert parse_archs(["sm_86", "compute_80 sm_89"]) == [(8, 0), (8, 6), (8, 9)]
    assert parse_archs(None) == []


def test_setup_py_uses_the_rule_instead_of_a_fixed_list():
    setup_py = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    assert "default_arch_list(" in setup_py
    assert '"8.0;9.0+PTX"' not in setup_py
