"""Every kind of file a run writes (JSON, safetensors, PNG, Markdown) gets the mode of any new file of the
user (0o666 minus the umask): safetensors' save_file and the PNG writer used to leave owner-only 0600 files
beside 0644 JSON."""

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

import rgprune
from rgprune._io import atomic_write, atomic_write_json
from rgprune.rg import FlowTrace
from rgprune.rg.report import write_flow_report


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o027, 0o002], ids=lambda u: f"umask-{u:03o}")
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def small_trace():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    trace = FlowTrace(pruner.names, pruner.masks.numels(), fraction=0.2)
    for n in range(4):
        trace.record_prune(n, pruner.prune(fraction=0.2))
    return trace, pruner


def test_every_file_kind_gets_the_users_umask_mode(tmp_path, umask):
    expected = 0o666 & ~umask
    with open(tmp_path / "plain.txt", "w") as f:  # what any program of the user would create
        f.write("x")
    assert mode(tmp_path / "plain.txt") == expected
    trace, pruner = small_trace()
    written = write_flow_report(trace, tmp_path / "report")  # trace.json, flow.json, report.md, PNGs
    pruner.masks.save(tmp_path / "masks.safetensors")
    tensors = {k: v.contiguous() for k, v in pruner.model.state_dict().items()}
    atomic_write(tmp_path / "weights.safetensors", lambda tmp: save_file(tensors, tmp))  # as IMP checkpoints
    atomic_write_json(tmp_path / "metrics.json", {"ok": True})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".json", ".safetensors", ".png", ".md"} <= kinds and len(written) >= 5
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files} == {
        str(p.relative_to(tmp_path)): oct(expected) for p in files
    }
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temporary left behind
