"""Exact global pruning across torch.distributed ranks (gloo on the CPU, 2 and 4 spawned processes).

Each test spawns its ranks on 127.0.0.1 (a free port, a 30 s process-group timeout) and runs a scenario
in every rank; a rank's failure comes back with its traceback. The sharded results must equal
single-process pruning bit for bit, ties included.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import pickle
import socket
import sys
import time
import traceback

import pytest
import torch
import torch.distributed as dist

import rgprune

pytestmark = [
    pytest.mark.reference,  # make test-reference
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()),
        reason="torch.distributed with gloo is not available in this torch build",
    ),
    pytest.mark.timeout(150),
]

PG_TIMEOUT = datetime.timedelta(seconds=30)


# ------------------------------------------------------------------------------------------------------
# process harness
# ------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, scenarios, outdir):
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    result = {}
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=PG_TIMEOUT
        )
        for name in scenarios:
            result[name] = SCENARIOS[name](rank, world)
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - reported to the parent
        result["error"] = traceback.format_exc()
    with open(os.path.join(outdir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    os._exit(0)  # skip interpreter teardown (a process group left over after an error may block it)


def run_ranks(world, scenarios, tmp_path, deadline=100.0):
    """Spawns ``world`` ranks running ``scenarios``; returns each rank's results (and exit codes)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, world, port, list(scenarios), str(tmp_path)), daemon=True)
        for r in range(world)
    ]
    for p in procs:
        p.start()
    end = time.monotonic() + deadline
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"ranks {hung} did not finish within {deadline} s"
    results = []
    for r, p in enumerate(procs):
        path = tmp_path / f"rank{r}.pkl"
        results.append(pickle.loads(path.read_bytes()) if path.exists() else {"exitcode": p.exitcode})
    return results


def check_no_errors(results):
    errors = [f"rank {r}:\n{res['error']}" for r, res in enumerate(results) if "error" in res]
    assert not errors, "\n".join(errors)


# ------------------------------------------------------------------------------------------------------
# scenarios (run in every rank)
# ------------------------------------------------------------------------------------------------------


def bits_of(t):
    view = {
        torch.float32: torch.int32,
        torch.float16: torch.int16,
        torch.bfloat16: torch.int16,
        torch.float64: torch.int64,
    }[t.dtype]
    return t.contiguous().view(view)


def tied_tensors(shapes, dtype, seed, levels=2, density=0.8):
    """The same tensors on every rank: few distinct magnitudes, so thresholds fall in huge tie groups."""
    g = torch.Generator().manual_seed(seed)
    tensors = [
        (torch.round(torch.randn(s, generator=g, dtype=torch.float64) * levels) / levels).to(dtype) for s in shapes
    ]
    keep = [torch.rand(s, generator=g) < density for s in shapes]
    masks = rgprune.MaskSet.from_bool(keep).words
    rgprune.apply_masks_(tensors, masks)
    return tensors, masks


def clone_all(xs):
    return [x.clone() for x in xs]


def ks_for(n, seed):
    g = torch.Generator().manual_seed(seed)
    return sorted({0, 1, n, n - 1, *torch.randint(0, n + 1, (4,), generator=g).tolist()})


def scenario_rank_order(rank, world):
    """Each rank holds consecutive tensors of one list: equals single-process pruning of the whole list."""
    import rgprune.distributed as rgd

    checked = straddled = 0
    for dtype in (torch.bfloat16, torch.float32):
        for seed in range(3):
            g = torch.Generator().manual_seed(100 + seed)
            n_tensors = world + 3
            shapes = [(int(n),) for n in torch.randint(0, 400, (n_tensors,), generator=g)]
            shapes[seed % n_tensors] = (0,)  # a zero-size tensor somewhere
            full, full_masks = tied_tensors(shapes, dtype, seed)
            cuts = [0, *sorted(torch.randperm(n_tensors - 1, generator=g)[: world - 1].add(1).tolist()), n_tensors]
            mine = slice(cuts[rank], cuts[rank + 1])
            n = sum(rgprune.MaskSet(full_masks, shapes).survivor_counts())
            for k in ks_for(n, seed):
                ref_t, ref_m = clone_all(full), clone_all(full_masks)
                want = rgprune.prune_global_(ref_t, ref_m, k)
                t, m = clone_all(full[mine]), clone_all(full_masks[mine])
                got = rgd.prune_global_distributed_(t, m, k)
                thr = got.threshold
                assert (thr.k, thr.key, thr.n_below, thr.n_ties, thr.n_equal, thr.n_survivors) == (
                    want.threshold.k,
                    want.threshold.key,
                    want.threshold.n_below,
                    want.threshold.n_ties,
                    want.threshold.n_equal,
                    want.threshold.n_survivors,
                ), (dtype, seed, k)
                assert torch.equal(thr.histogram, want.threshold.histogram)
                for a, b in zip(m, ref_m[mine]):
                    assert torch.equal(a, b), (dtype, seed, k)
                for a, b in zip(t, ref_t[mine]):
                    assert torch.equal(bits_of(a), bits_of(b)), (dtype, seed, k)
                # the ranks' shares add up to k
                shares = [None] * world
                dist.all_gather_object(shares, (thr.local.k, thr.local.n_equal))
                assert sum(s[0] for s in shares) == k
                # the tie group is cut (some pruned, some kept) and spread over several ranks
                straddled += 0 < thr.n_ties < thr.n_equal and sum(s[1] > 0 for s in shares) >= 2
                checked += 1
    assert straddled, "no case split a tie group"
    return checked


def scenario_parameter_order(rank, world):
    """Each rank holds the row block of every tensor (FSDP2's Shard(0)): equals single-process pruning of
    the full tensors, ties in model order; two rounds, so earlier masks are respected."""
    import rgprune.distributed as rgd

    checked = 0
    for dtype in (torch.bfloat16, torch.float32):
        shapes = [(7, 5), (3, 11), (1, 4), (40, 3, 3), (2 * world + 1,)]
        full, full_masks = tied_tensors(shapes, dtype, seed=7)
        local = [t.chunk(world, 0)[rank].contiguous() if rank < len(t.chunk(world, 0)) else t[:0].clone() for t in full]
        local_masks = [
            rgprune.MaskSet.from_bool([b.chunk(world, 0)[rank] if rank < len(b.chunk(world, 0)) else b[:0]]).words[0]
            for b in rgprune.MaskSet(full_masks, shapes).to_bool()
        ]
        ref_t, ref_m = clone_all(full), clone_all(full_masks)
        n = sum(rgprune.MaskSet(ref_m, shapes).survivor_counts())
        for k in (n // 3, n // 4, 1):
            want = rgprune.prune_global_(ref_t, ref_m, k)
            got = rgd.prune_global_distributed_(local, local_masks, k, tie_order="parameter")
            assert got.threshold.key == want.threshold.key and got.threshold.n_ties == want.threshold.n_ties
            keep = rgprune.MaskSet(ref_m, shapes).to_bool()
            for i, (t, m) in enumerate(zip(local, local_masks)):
                chunks = keep[i].chunk(world, 0)
                want_keep = chunks[rank] if rank < len(chunks) else keep[i][:0]
                assert torch.equal(rgprune.MaskSet([m], [t.shape]).to_bool()[0], want_keep), (dtype, k, i)
                chunks = ref_t[i].chunk(world, 0)
                want_t = chunks[rank] if rank < len(chunks) else ref_t[i][:0]
                assert torch.equal(bits_of(t), bits_of(want_t)), (dtype, k, i)
            checked += 1
    return checked


def expect_error_everywhere(call, exc_type, match):
    import re

    try:
        call()
    except exc_type as exc:
        assert re.search(match, str(exc)), str(exc)
        return str(exc)
    raise AssertionError(f"no {exc_type.__name__} raised")


def scenario_errors(rank, world):
    """Bad arguments raise on every rank alike (decided after the first all_reduce), nothing changes and
    the ranks stay in step: a valid call afterwards still works."""
    import rgprune.distributed as rgd

    shapes = [(50,), (3, 7)]
    full, full_masks = tied_tensors(shapes, torch.float32, seed=rank)  # different weights per rank
    n_local = sum(rgprune.MaskSet(full_masks, shapes).survivor_counts())
    totals = [None] * world
    dist.all_gather_object(totals, n_local)
    n = sum(totals)
    before = clone_all(full), clone_all(full_masks)
    messages = {}
    messages["k>n"] = expect_error_everywhere(
        lambda: rgd.prune_global_distributed_(full, full_masks, n + 1),
        ValueError,
        rf"k={n + 1} exceeds the {n} surviving weights",
    )
    nan_t = clone_all(full)
    if rank == world - 1:
        nan_t[1][0, 0] = float("nan")
        full_masks[1][0] |= 1  # make sure it survives
    messages["nan"] = expect_error_everywhere(
        lambda: rgd.prune_global_distributed_(nan_t, full_masks, 3), ValueError, rf"NaN \(on rank\(s\) \[{world - 1}\]"
    )
    full_masks[1].copy_(before[1][1])
    messages["k differs"] = expect_error_everywhere(
        lambda: rgd.prune_global_distributed_(full, full_masks, 3 + (rank == 0)), ValueError, "different k"
    )
    messages["bad arg on rank 0"] = expect_error_everywhere(
        lambda: rgd.prune_global_distributed_(full, full_masks, -1 if rank == 0 else 3),
        ValueError,
        "k must be >= 0" if rank == 0 else r"rank\(s\) \[0\] rejected their arguments",
    )
    messages["dtype differs"] = expect_error_everywhere(
        lambda: rgd.prune_global_distributed_([t.to(torch.float16) if rank == 1 else t for t in full], full_masks, 3),
        TypeError,
        "different dtypes",
    )
    for a, b in zip(full + full_masks, before[0] + before[1]):
        assert torch.equal(a, b)
    # still in step: a valid call works and prunes k over all ranks
    res = rgd.prune_global_distributed_(full, full_masks, n // 2)
    left = [None] * world
    dist.all_gather_object(left, sum(rgprune.MaskSet(full_masks, shapes).survivor_counts()))
    assert sum(left) == n - n // 2 and res.threshold.n_survivors == n
    return messages


def mask_digest(pruner):
    h = hashlib.sha256()
    for w in pruner.masks.words:
        h.update(w.cpu().numpy().tobytes())
    for p in pruner.params:
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def scenario_ddp(rank, world):
    """DDP: every rank holds the whole model, so the pruner prunes locally and every rank gets the same
    masks; a model that is not replicated is caught on every rank."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rgprune.models import build_model

    model = build_model("resnet20", 10, in_channels=1, seed=rank)  # DDP broadcasts rank 0's weights
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    pruner = rgprune.GlobalMagnitudePruner(ddp, process_group="default")
    assert not pruner.sharded
    pruner.attach(opt)
    g = torch.Generator().manual_seed(rank)  # different data per rank; DDP averages the gradients
    for fraction in (0.2, 0.5):
        x, y = torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        pruner.prune(fraction=fraction)
    survivors = sum(pruner.masks.survivor_counts())
    assert pruner.num_survivors == survivors
    digests = [None] * world
    dist.all_gather_object(digests, mask_digest(pruner))
    assert len(set(digests)) == 1, digests
    # not replicated (different weights per rank, no DDP): refused on every rank
    other = rgprune.GlobalMagnitudePruner(
        build_model("resnet20", 10, in_channels=1, seed=rank), process_group=dist.group.WORLD
    )
    other.prune(fraction=0.3)  # same k and counts everywhere: allowed (masks may differ: replicas' business)
    msg = expect_error_everywhere(lambda: other.prune(fraction=0.3 + 0.1 * rank), ValueError, "differ between ranks")
    return {"n_weights": pruner.num_weights, "survivors": survivors, "refused": msg}


def scenario_fsdp2(rank, world):
    """FSDP2 fully_shard (DTensor parameters): the pruner prunes local shards with the global threshold;
    masks and weights equal single-process pruning of the full model, ties included; the optimizer hook
    keeps pruned shards and their momentum at 0."""
    import copy

    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:
        return {"skip": f"FSDP2 (torch.distributed.fsdp.fully_shard) is not in this torch: {exc}"}
    from rgprune.models import build_model

    model = build_model("resnet20", 10, in_channels=1, seed=0)
    with torch.no_grad():  # few distinct values: many ties at every threshold, across shards and ranks
        for p in model.parameters():
            p.copy_(torch.round(p * 16) / 16)
    solo_model = copy.deepcopy(model)
    solo = rgprune.GlobalMagnitudePruner(solo_model)
    try:
        mesh = init_device_mesh("cpu", (world,))
        for block in (m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    except (NotImplementedError, RuntimeError) as exc:
        return {"skip": f"FSDP2 fully_shard does not run on the CPU with gloo in this torch: {exc}"}
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}  # DTensors: the rewind point
    pruner = rgprune.GlobalMagnitudePruner(model, process_group="default")
    assert pruner.sharded and pruner.num_weights == solo.num_weights
    names = pruner.names
    assert names == solo.names
    split_ties = 0
    for step in ({"fraction": 0.3}, {"target_density": 0.5}, {"fraction": 0.25}):
        want = solo.prune(**step)
        got = pruner.prune(**step)
        split_ties += 0 < got.threshold.n_ties < got.threshold.n_equal
        assert (got.k, got.threshold.key, got.threshold.n_ties, got.threshold.n_equal) == (
            want.k,
            want.threshold.key,
            want.threshold.n_ties,
            want.threshold.n_equal,
        ), step
        assert got.density == want.density and pruner.num_survivors == solo.num_survivors
        assert torch.equal(got.stats.histogram, want.stats.histogram)
        assert torch.equal(got.stats.counts, want.stats.counts)
        assert pruner.layer_densities() == solo.layer_densities()
        full_keep = solo.masks.to_bool()
        params = dict(model.named_parameters())
        for i, (name, keep) in enumerate(zip(names, pruner.masks.to_bool())):
            chunks = full_keep[i].chunk(world, 0)
            assert torch.equal(keep, chunks[rank] if rank < len(chunks) else full_keep[i][:0]), (step, name)
            full = params[name].full_tensor()  # gathered from the real shards: the writes landed there
            assert torch.equal(bits_of(full), bits_of(dict(solo_model.named_parameters())[name].detach())), name
    assert split_ties, "the scenario should prune part of a tie group"
    # training keeps the pruned shards (and their momentum) at 0
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pruner.attach(opt)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    params = dict(model.named_parameters())
    for name, keep in zip(names, pruner.masks.to_bool()):
        local = params[name].to_local()
        assert torch.all(bits_of(local)[~keep] == 0), name
        mom = opt.state[params[name]]["momentum_buffer"].to_local()
        assert torch.all(mom[~keep] == 0), name
    # rewinding to a sharded state dict keeps the pruned shards at 0; masks round-trip through state_dict
    pruner.rewind(init)
    pruner.load_state_dict(pruner.state_dict())
    for name, keep in zip(names, pruner.masks.to_bool()):
        local, start = params[name].to_local(), init[name].to_local()
        assert torch.all(bits_of(local)[~keep] == 0) and torch.equal(local[keep], start[keep]), name
    return {
        "n_weights": pruner.num_weights,
        "survivors": pruner.num_survivors,
        "mask_survivors": sum(pruner.masks.survivor_counts()),
    }


def scenario_crash(rank, world):
    """The last rank dies before the first all_reduce: the others fail with a clear error, no hang."""
    import rgprune.distributed as rgd

    tensors = [torch.randn(1000)]
    masks = rgprune.MaskSet.ones(tensors).words
    dist.barrier()  # every rank connected
    if rank == world - 1:
        os._exit(3)
    start = time.monotonic()
    try:
        rgd.global_magnitude_threshold_distributed(tensors, masks, 10)
    except rgd.DistributedPruneError as exc:
        result = {"elapsed": time.monotonic() - start, "message": str(exc)}
    else:
        result = {"elapsed": time.monotonic() - start, "message": None}
    # report now: the process group is broken, tearing it down could block
    path = os.environ["RGPRUNE_TEST_OUT"]
    with open(os.path.join(path, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump({"crash": result}, f)
    os._exit(0)


SCENARIOS = {
    "rank_order": scenario_rank_order,
    "parameter_order": scenario_parameter_order,
    "errors": scenario_errors,
    "ddp": scenario_ddp,
    "fsdp2": scenario_fsdp2,
    "crash": scenario_crash,
}


# ------------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_lists_equal_single_process(world, tmp_path):
    results = run_ranks(world, ["rank_order", "parameter_order", "errors"], tmp_path)
    check_no_errors(results)
    assert all(res["rank_order"] == results[0]["rank_order"] > 0 for res in results)
    assert all(res["parameter_order"] == 6 for res in results)
    assert results[0]["errors"]["k>n"]


def test_ddp_and_fsdp2_pruner(tmp_path):
    """Survivor counts are integers fixed by the pruning rule (k = round(fraction * survivors), keep =
    round(target_density * n)), the same on every rank. Guards against: a rank pruning one weight more or less
    (a density compared with a tolerance would not see it), FSDP2 shards counted twice or not at all."""
    results = run_ranks(2, ["ddp", "fsdp2"], tmp_path)
    check_no_errors(results)
    n = results[0]["ddp"]["n_weights"]
    after_02 = n - round(0.2 * n)
    assert [res["ddp"]["survivors"] for res in results] == [after_02 - round(0.5 * after_02)] * 2
    fsdp = results[0]["fsdp2"]
    if "skip" in fsdp:
        pytest.skip(fsdp["skip"])
    n = fsdp["n_weights"]
    after_03 = n - round(0.3 * n)
    after_05 = round(0.5 * n)
    want = after_05 - round(0.25 * after_05)
    assert after_03 > after_05
    assert [res["fsdp2"]["survivors"] for res in results] == [want] * 2
    assert sum(res["fsdp2"]["mask_survivors"] for res in results) == want  # each rank's masks cover its shards


def test_crashed_rank_fails_fast_with_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RGPRUNE_TEST_OUT", str(tmp_path))  # inherited by the spawned ranks
    world = 3
    results = run_ranks(world, ["crash"], tmp_path, deadline=PG_TIMEOUT.total_seconds() + 30)
    assert results[-1] == {"exitcode": 3}
    for rank, res in enumerate(results[:-1]):
        assert "crash" in res, f"rank {rank}: {res}"
        crash = res["crash"]
        assert crash["message"] is not None, f"rank {rank} did not fail"
        assert crash["elapsed"] < PG_TIMEOUT.total_seconds() + 10
        assert "process group" in crash["message"] and "timeout" in crash["message"], crash["message"]
        assert "all_reduce of the first histogram pass" in crash["message"]


def test_single_process_group_matches_local(tmp_path):
    """world_size 1 in this process: the distributed threshold is the single-process one, every dtype."""
    import rgprune.distributed as rgd

    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=PG_TIMEOUT)
    try:
        for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            for levels in (0, 4):
                g = torch.Generator().manual_seed(levels)
                ts = [torch.randn(n, generator=g, dtype=torch.float64) for n in (100, 0, 3000, 17)]
                ts = [(torch.round(t * levels) / levels if levels else t).to(dtype) for t in ts]
                ms = rgprune.MaskSet.from_bool([torch.rand(t.shape, generator=g) < 0.8 for t in ts]).words
                n = int(rgprune.magnitude_histogram(ts, ms).counts.sum())
                for k in (0, 1, n // 3, n - 1, n):
                    for order in ("rank", "parameter"):
                        d = rgd.global_magnitude_threshold_distributed(ts, ms, k, tie_order=order)
                        s = rgprune.global_magnitude_threshold(ts, ms, k)
                        assert (d.key, d.n_below, d.n_ties, d.n_equal, d.n_survivors) == (
                            s.key,
                            s.n_below,
                            s.n_ties,
                            s.n_equal,
                            s.n_survivors,
                        )
                        # every slot but INFO_N_OUTSIDE, which the distributed threshold leaves 0 (its first
                        # pass does not count the weights outside the masks; the pruner calls check() for them)
                        out = rgprune.kernels.format.INFO_N_OUTSIDE
                        assert d.local.info.tolist()[:out] == s.info.tolist()[:out] == d.info.tolist()[:out]
                        assert d.local.info.tolist()[out:] == d.info.tolist()[out:] == [0]
                        assert d.passes == (1 if k == 0 else -(-rgprune.kernels.format.KEY_BITS[dtype] // 12))
        with pytest.raises(ValueError, match="tie_order must be"):
            rgd.global_magnitude_threshold_distributed(ts, ms, 1, tie_order="model")
        # the pruner with a group but a plain model prunes locally, like the one-process pruner
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
        pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True, process_group="default")
        assert not pruner.sharded and pruner.prune(fraction=0.5).k == 96
        with pytest.raises(TypeError, match="ProcessGroup"):
            rgd.resolve_group(42)
    finally:
        dist.destroy_process_group()


def test_pruner_needs_initialized_distributed():
    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    with pytest.raises(RuntimeError, match="init_process_group"):
        rgprune.GlobalMagnitudePruner(model, process_group="default")
    assert rgprune.GlobalMagnitudePruner(model, process_group=None).process_group is None
