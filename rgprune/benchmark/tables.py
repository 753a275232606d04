"""Tables of a benchmark result (the JSON that ``rgprune.benchmark`` writes).

``render_result(result)`` gives every markdown table of one result: what ``python -m bench.compare`` prints.
The README's performance block (``bench/readme_table.py``) is built from the same tables. ``summary(result)``
is the plain-text table ``rgprune bench`` prints. Only standard-library code: it reads the JSON, whatever
machine measured it.
"""

from __future__ import annotations

METHODS = ("torch_prune", "rgprune_switch", "naive", "naive_topk", "reference", "rgprune")
SHORT = {
    "torch_prune": "torch.prune",
    "rgprune_switch": "rgprune.prune (switch)",
    "naive": "naive cat+kthvalue",
    "naive_topk": "naive cat+topk",
    "reference": "rgprune reference",
    "rgprune": "rgprune",
}


# ---- formatting ------------------------------------------------------------------------------------


def fmt_s(x) -> str:
    if x is None:
        return "—"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} µs"


def fmt_x(x, digits=1) -> str:
    return "—" if x is None else f"{x:.{digits}f}x"


def fmt_b(x) -> str:
    if x is None:
        return "—"
    sign = "-" if x < 0 else ""
    x = abs(x)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= scale:
            return f"{sign}{x / scale:.1f} {unit}"
    return f"{sign}{x:.0f} B"


def fmt_n(n) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _time_cell(entry) -> str:
    if not entry:
        return "—"
    if entry.get("error"):
        return "error"
    return f"{fmt_s(entry.get('median_s'))} ({entry.get('reps', 0)})"


def round_keys(per_round: dict) -> list:
    """The ``roundN`` keys of a mapping, in round order."""
    return sorted((k for k in per_round if k.startswith("round") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def _rounds(res):
    for name, m in res["models"].items():
        rounds = m.get("rounds", {})
        for rkey in round_keys(rounds):
            yield name, m, rkey, rounds[rkey]


def _round_label(rkey, r) -> str:
    return f"{rkey[5:]} ({r['density']:.2f})"


# ---- sections -----------------------------------------------------------------------------------


def machine_line(res) -> str:
    m = res["machine"]
    where = f"GPU {m['gpu']['name']}, host CPU {m['cpu_model']}" if res["kind"] == "gpu" else f"CPU {m['cpu_model']}"
    load = ""
    if m.get("load_average_at_start") and m.get("load_average_at_end"):
        load = f"; load average {m['load_average_at_start'][0]:.1f} at start, {m['load_average_at_end'][0]:.1f} at end"
    return (
        f"{where}; {m['cores_available']} cores available, torch threads {m['torch_threads']}{load}; torch "
        f"{m['torch']}; rgprune backend `{m['rgprune_backend']}`; {res['date']}"
    )


def rounds_table(res, with_memory=True) -> str:
    methods = [m for m in METHODS if any(m in r["methods"] for *_, r in _rounds(res))]
    header = ["weights", "round (density)"] + [SHORT[m] for m in methods]
    header += [f"rgprune vs {SHORT[m]}" for m in methods if m != "rgprune"]
    if with_memory:
        header += ["peak extra memory: " + " / ".join(SHORT[m] for m in methods)]
    rows = []
    for name, m, rkey, r in _rounds(res):
        row = [f"{name} ({fmt_n(m['n_weights'])})", _round_label(rkey, r)]
        row += [_time_cell(r["methods"].get(x)) for x in methods]
        row += [fmt_x(r["speedup"].get(f"vs_{x}")) for x in methods if x != "rgprune"]
        if with_memory:
            mem = m.get("memory", {}).get(rkey, {})
            row.append(" / ".join(fmt_b(mem.get(x, {}).get("peak_extra_bytes")) for x in methods))
        rows.append(row)
    return table(header, rows)


def correctness_table(res) -> str:
    methods = [m for m in METHODS if any(m in r["methods"] for *_, r in _rounds(res))]
    header = ["weights", "round", "k"] + [f"{SHORT[m]}: pruned (bits ≠ rgprune)" for m in methods]
    rows = []
    for name, _, rkey, r in _rounds(res):
        row = [name, rkey[5:], r["k"]]
        for x in methods:
            e = r["methods"].get(x, {})
            row.append(
                "—" if "pruned" not in e else f"{e['pruned']} ({e.get('mask_bits_differing_from_rgprune', '—')})"
            )
        rows.append(row)
    return table(header, rows)


def mask_agreement_cell(entry) -> str:
    """Whether a method's masks equal torch.prune's up to the tie order (bits differing only among weights at
    the threshold magnitude), with the differing bits."""
    if "masks_equal_torch_prune_up_to_ties" not in entry:
        return "—"
    total = entry["mask_bits_differing_from_torch_prune"]
    outside = entry["mask_bits_differing_from_torch_prune_outside_ties"]
    if outside:
        return f"NO: {outside} bits outside ties"
    return "yes" if total == 0 else f"yes ({total} tie bits)"


def _compared_with_torch_prune(res) -> bool:
    return any("masks_equal_torch_prune_up_to_ties" in e for *_, r in _rounds(res) for e in r["methods"].values())


def mask_agreement_table(res) -> str:
    methods = [m for m in METHODS if m != "torch_prune" and any(m in r["methods"] for *_, r in _rounds(res))]
    header = ["weights", "round", "weights at the threshold"] + [f"{SHORT[m]} = torch.prune" for m in methods]
    rows = [
        [name, rkey[5:], r.get("weights_at_threshold", "—")]
        + [mask_agreement_cell(r["methods"].get(x, {})) for x in methods]
        for name, m, rkey, r in _rounds(res)
    ]
    return table(header, rows)


def memory_table(res) -> str:
    methods = [m for m in METHODS if any(m in r["methods"] for *_, r in _rounds(res))]
    header = ["weights", "round", "weights' bytes"] + [f"{SHORT[m]} peak / retained" for m in methods]
    header += ["rgprune peak / weights' bytes"]
    rows = []
    for name, m, rkey, _ in _rounds(res):
        mem = m.get("memory", {}).get(rkey, {})
        row = [name, rkey[5:], fmt_b(m["weight_bytes"])]
        for x in methods:
            e = mem.get(x, {})
            row.append(
                "error" if e.get("error") else f"{fmt_b(e.get('peak_extra_bytes'))} / {fmt_b(e.get('retained_bytes'))}"
            )
        frac = mem.get("rgprune", {}).get("peak_extra_fraction_of_weights")
        row.append("—" if frac is None else f"{100 * frac:.2f}%")
        rows.append(row)
    storage = table(
        ["weights", "torch.prune float masks (+ weight_orig copy)", "naive bool masks", "rgprune bit masks"],
        [
            [
                name,
                f"{fmt_b(s['torch_prune'])} (+{fmt_b(s['torch_prune_reparam_total'] - s['torch_prune'])})",
                fmt_b(s["naive"]),
                fmt_b(s["rgprune"]),
            ]
            for name, m in res["models"].items()
            for s in [m["mask_storage_bytes"]]
        ],
    )
    return table(header, rows) + "\n\nMask storage:\n\n" + storage


def training_table(res) -> str:
    rows = []
    for name, m in res["models"].items():
        t = m.get("training_step")
        if not t:
            continue
        v, ratio, re_ = t["variants"], t["ratio_vs_no_pruning"], t["mask_reapplication"]
        b = t["batch"]
        shape = (
            f"batch {b['batch']} at {b['image']}x{b['image']}"
            if b["kind"] == "vision"
            else f"batch {b['batch']} x {b['seq']} tokens"
        )
        rows.append(
            [
                name,
                f"{t['optimizer']}, {shape}",
                _time_cell(v["no_pruning"]),
                _time_cell(v["torch_prune"]),
                _time_cell(v["rgprune_attach"]),
                fmt_x(ratio["torch_prune"], 2),
                fmt_x(ratio["rgprune_attach"], 2),
                f"{_time_cell(re_['variants']['apply_masks_'])} = "
                f"{fmt_x(re_['ratio_vs_read_write_pass'], 2)} a read+write pass",
            ]
        )
    return table(
        [
            "weights",
            "step",
            "no pruning",
            "torch.prune hook",
            "rgprune attach",
            "torch.prune / none",
            "rgprune / none",
            "apply_masks_ (weights + optimizer state)",
        ],
        rows,
    )


def trace_table(res) -> str:
    rows = []
    for name, m in res["models"].items():
        tr = m.get("trace")
        if not tr:
            continue
        for rkey in round_keys(tr):
            t = tr[rkey]
            v = t["variants"]
            extra = 100 * (t["separate_histogram_pass_ratio"] or 0)
            rows.append(
                [
                    name,
                    rkey[5:],
                    _time_cell(v["round_with_trace"]),
                    _time_cell(v["round_without_trace"]),
                    fmt_x(t["trace_overhead_ratio"], 2),
                    _time_cell(v["threshold_only"]),
                    _time_cell(v["apply_only"]),
                    _time_cell(v["apply_only_bits1"]),
                    f"{_time_cell(v['histogram_pass'])} (+{extra:.0f}%)",
                ]
            )
    note = next((m["trace"]["note"] for m in res["models"].values() if m.get("trace")), "")
    return table(
        [
            "weights",
            "round",
            "round, trace kept",
            "round, trace discarded (bits=1)",
            "with / without",
            "threshold only",
            "apply (bits=12)",
            "apply (bits=1)",
            "separate histogram pass (vs round)",
        ],
        rows,
    ) + (f"\n\n{note}" if note else "")


def floor_table(res) -> str:
    bw = res.get("copy_bandwidth")
    if not bw:
        return "copy bandwidth not measured"
    rows = []
    for name, m in res["models"].items():
        fl = m.get("floor")
        if not fl:
            continue
        for rkey in round_keys(fl):
            rows.append(
                [
                    name,
                    rkey[5:],
                    fmt_b(fl["floor_bytes"]),
                    fmt_s(fl["floor_s"]),
                    fmt_s(fl[rkey]["rgprune_s"]),
                    fmt_x(fl[rkey]["times_floor"]),
                ]
            )
    return (
        f"Measured copy bandwidth {bw['bytes_per_s'] / 1e9:.1f} GB/s (read + write). Floor = 3 reads + 1 write of "
        f"the weights + 1 read + 1 write of the bit masks.\n\n"
        + table(["weights", "round", "floor bytes", "floor time", "rgprune", "rgprune / floor"], rows)
    )


def targets_table(res) -> str:
    rows = []
    for t in res["targets"]:
        measured = t["measured"]
        if measured is None:
            shown = "—"
        elif t["id"].endswith(".memory"):
            shown = f"{100 * measured:.3f}%"
        else:
            shown = f"{measured:.2f}"
        met = "n/a" if t["met"] is None else ("met" if t["met"] else "**missed**")
        rows.append([t["description"], t["required"], shown, met])
    return table(["target", "required", "measured", ""], rows)


def render_result(res) -> str:
    """Every table of one result (what ``python -m bench.compare`` prints)."""
    parts = [f"## rgprune benchmark, {res['kind']}: {machine_line(res)}"]
    if res.get("quick"):
        parts.append("*Quick run on tiny weight sets: the numbers exercise the script, they mean nothing.*")
    parts += [
        "### One IMP round: prune 20% of the survivors\n\nMedian time (repetitions), interleaved in one run; "
        "speedups are ratios of medians.\n\n" + rounds_table(res, with_memory=False),
        "Pruned weights per method (mask bits differing from rgprune's; ties at the threshold may go either "
        "way in torch.prune, and naive prunes every tie):\n\n" + correctness_table(res),
        *(
            [
                "Masks equal to torch.prune's up to the tie order (bits may differ only among weights whose "
                "magnitude equals the threshold):\n\n" + mask_agreement_table(res)
            ]
            if _compared_with_torch_prune(res)
            else []
        ),
        "### Memory\n\nPeak extra memory during the round / memory still held after it "
        + (
            "(fresh subprocess per method, peak RSS minus RSS before the op)"
            if res["kind"] == "cpu"
            else "(torch.cuda.max_memory_allocated minus the allocation before the op)"
        )
        + ":\n\n"
        + memory_table(res),
        "### Training step with the masks kept applied\n\n" + training_table(res),
        "### RG trace\n\n" + trace_table(res),
        "### Memory-bandwidth floor\n\n" + floor_table(res),
        "### Targets\n\n" + targets_table(res),
    ]
    if res.get("errors"):
        parts.append("### Errors\n\n" + "\n".join(f"- {e}" for e in res["errors"]))
    return "\n\n".join(parts)


# ---- plain text (rgprune bench) -------------------------------------------------------------------


def text_table(header, rows) -> str:
    """Columns aligned with spaces, for a terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _spread_cell(entry) -> str:
    if not entry.get("times_s"):
        return "—"
    lo, hi = entry["min_s"], entry.get("max_s", max(entry["times_s"]))
    return f"{fmt_s(lo)} .. {fmt_s(hi)}"


def _summary_rows(m, rkey, r) -> list:
    mem = m.get("memory", {}).get(rkey, {})
    rows = []
    for x in METHODS:
        e = r["methods"].get(x)
        if e is None:
            continue
        time = "error: " + e["error"] if e.get("error") and not e.get("times_s") else fmt_s(e.get("median_s"))
        speedup = "—" if x == "rgprune" else fmt_x(r["speedup"].get(f"vs_{x}"))
        rows.append(
            [
                rkey[5:],
                f"{r['density']:.2f}",
                SHORT[x],
                time,
                _spread_cell(e),
                e.get("reps", 0),
                speedup,
                fmt_b(mem.get(x, {}).get("peak_extra_bytes")),
                "(itself)" if x == "torch_prune" else mask_agreement_cell(e),
            ]
        )
    return rows


def _floor_line(res, m) -> str:
    bw, fl = res.get("copy_bandwidth"), m.get("floor")
    if not bw or not fl:
        return "memory-bandwidth floor: not measured"
    per_round = ", ".join(
        f"round {k[5:]}: {fmt_s(fl[k]['rgprune_s'])} = {fmt_x(fl[k]['times_floor'])} the floor" for k in round_keys(fl)
    )
    return (
        f"memory-bandwidth floor: copy bandwidth {bw['bytes_per_s'] / 1e9:.1f} GB/s; a round moves "
        f"{fmt_b(fl['floor_bytes'])} (3 reads + 1 write of the weights, the bit masks read and written) "
        f"= {fmt_s(fl['floor_s'])}; rgprune {per_round}"
    )


def summary(res) -> str:
    """The plain-text report of ``rgprune bench``: per weight set and round, each method's median time, its
    spread (fastest .. slowest repetition), rgprune's speedup over it, its peak extra memory and whether its
    masks equal torch.prune's up to the tie order; then the bandwidth floor and the errors."""
    parts = [f"rgprune benchmark, {res['kind']}: {machine_line(res)}"]
    header = [
        "round",
        "density",
        "method",
        "median",
        "spread",
        "reps",
        "rgprune faster by",
        "peak extra memory",
        "masks = torch.prune",
    ]
    for name, m in res["models"].items():
        rows = [row for rkey in round_keys(m.get("rounds", {})) for row in _summary_rows(m, rkey, m["rounds"][rkey])]
        parts.append(
            f"{name}: {m['n_weights']:,} {m['dtype']} weights in {m['n_tensors']} tensors "
            f"({m['description']}); each round prunes {res['settings']['fraction']:g} of the survivors"
        )
        parts.append(text_table(header, rows))
        parts.append(_floor_line(res, m))
    if res.get("errors"):
        parts.append("errors:\n" + "\n".join(f"  {e}" for e in res["errors"]))
    return "\n\n".join(parts)


def scale_summary(res) -> str:
    """The plain-text report of a scale series: per size and method, ns per weight and peak extra bytes per
    weight; then how the time grows (the exponent of a power law fitted to it: 1.0 is linear)."""
    scale = res["scale"]
    parts = []
    for rkey in round_keys(scale["growth"]):
        per_method = scale["growth"][rkey]
        methods = [m for m in METHODS if m in per_method]
        rows = []
        for i, n in enumerate(scale["sizes"]):
            row = [fmt_n(n)]
            for m in methods:
                ns, b = per_method[m]["ns_per_weight"][i], per_method[m]["peak_extra_bytes_per_weight"][i]
                row.append(("—" if ns is None else f"{ns:.2f} ns") + " / " + ("—" if b is None else f"{b:.2f} B"))
            rows.append(row)
        parts.append(f"round {rkey[5:]}: time per weight / peak extra memory per weight")
        parts.append(text_table(["weights"] + [SHORT[m] for m in methods], rows))
        exps = ", ".join(
            f"{SHORT[m]} {per_method[m]['time_growth_exponent']:.2f}"
            for m in methods
            if per_method[m]["time_growth_exponent"] is not None
        )
        parts.append(f"time grows as (weights)^p with p: {exps or '— (one size)'}")
    for s in scale.get("skipped", []):
        parts.append(f"skipped {fmt_n(s['n_weights'])}: {s['reason']}")
    if scale.get("plot"):
        parts.append(f"plot: {scale['plot']}")
    return "\n\n".join(parts)
