"""The outputs of a run: the targets, a table on stdout, a JSON file, a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.workloads import KiB, MiB

RECOSTATE = "recostate"
HAND = "redis-py by hand"


def human_size(size: int) -> str:
    """Return ``1 KiB``, ``64 KiB``, ``8 MiB``..."""
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"


def _cell(cells: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for cell in cells:
        if all(cell.get(k) == v for k, v in match.items()):
            return cell
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate the issue's targets on one run's results (ratios within the run)."""
    cells = results["cells"]
    out: list[dict[str, Any]] = []

    def ratio(name: str, op: str, tasks: int, field: str, want: float, higher: bool) -> None:
        ours = _cell(cells, contender=RECOSTATE, loop="asyncio", op=op, tasks=tasks, size=KiB)
        hand = _cell(cells, contender=HAND, loop="asyncio", op=op, tasks=tasks, size=KiB)
        if not ours or not hand or not hand[field] or not ours[field]:
            out.append({"target": name, "value": None, "want": want, "ok": None})
            return
        value = ours[field] / hand[field]
        ok = value >= want if higher else value <= want
        out.append({"target": name, "value": round(value, 2), "want": want, "ok": ok})

    ratio("save throughput, 64 tasks, 1 KiB: recostate / by hand", "save", 64, "ops_per_s", 3.0, True)
    ratio("load throughput, 64 tasks, 1 KiB: recostate / by hand", "load", 64, "ops_per_s", 2.0, True)
    ratio("p50 save latency, 1 task, 1 KiB: recostate / by hand", "save", 1, "p50_ms", 1.25, False)
    ratio("p50 load latency, 1 task, 1 KiB: recostate / by hand", "load", 1, "p50_ms", 1.25, False)
    stall = results.get("stall") or {}
    if "save_ratio" in stall:
        size = human_size(stall["state_bytes"])
        out.append(
            {
                "target": f"loop stall saving a {size} state: recostate / inline codec",
                "value": stall["save_ratio"],
                "want": 0.7,
                "ok": stall["save_ratio"] <= 0.7,
            }
        )
    memory = results.get("memory") or {}
    for codec in ("lz4", "zlib", "none"):
        if codec in memory:
            value = memory[codec]["added_per_version"]
            out.append(
                {
                    "target": f"bytes a version costs beyond its {codec} payload, net of "
                    "Redis's own per-value cost (MEMORY USAGE)",
                    "value": value,
                    "want": 200,
                    "ok": value <= 200,
                }
            )
    soak = results.get("soak") or {}
    if soak:
        out.append(
            {
                "target": f"in-process memory flat over a {soak['seconds']:.0f} s soak (growth MiB)",
                "value": soak["growth_mib"],
                "want": "flat",
                "ok": soak["flat"],
            }
        )
    return out


def table(results: dict[str, Any]) -> str:
    """Return the human-readable report."""
    cells = results["cells"]
    names = list(dict.fromkeys(cell["contender"] for cell in cells))
    lines = [f"recostate benchmarks ({results['mode']}) on {results['machine']['summary']}"]
    lines.append(f"server: {results['server']}")
    machine = results["machine"]
    lines.append(
        f"load average at start: {machine.get('load_average_at_start')}; "
        f"OpenTelemetry spans in recostate: {'on' if machine.get('opentelemetry_active') else 'off'}"
    )
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    lines.append("")
    header = f"{'loop':8} {'size':>7} {'op':5} {'tasks':>5} | " + " | ".join(
        f"{name:>26}" for name in names
    )
    lines.append("throughput ops/s (p50 / p99 ms)")
    lines.append(header)
    lines.append("-" * len(header))
    keys = list(dict.fromkeys((c["loop"], c["size"], c["op"], c["tasks"]) for c in cells))
    for loop, size, op, tasks in keys:
        row = f"{loop:8} {human_size(size):>7} {op:5} {tasks:>5} | "
        parts = []
        for name in names:
            cell = _cell(cells, contender=name, loop=loop, size=size, op=op, tasks=tasks)
            if cell is None:
                parts.append(f"{'-':>26}")
            elif cell["note"]:
                parts.append(f"{cell['note'][:26]:>26}")
            else:
                text = f"{cell['ops_per_s']:>8.0f} ({cell['p50_ms']:.2f}/{cell['p99_ms']:.2f})"
                if cell["errors"]:
                    text += f" E{cell['errors']}"
                parts.append(f"{text:>26}")
        lines.append(row + " | ".join(parts))
    ceiling = results.get("ceiling") or []
    if ceiling:
        lines.append("")
        lines.append("server ceiling (redis-benchmark)")
        for entry in ceiling:
            if "skipped" in entry:
                lines.append(f"  skipped: {entry['skipped']}")
                continue
            lines.append(
                f"  {human_size(entry['size']):>7} {entry['clients']} clients, pipeline "
                f"{entry['pipeline']:>2}: SET {entry.get('set_per_s', 0):>10.0f}/s  "
                f"GET {entry.get('get_per_s', 0):>10.0f}/s"
            )
    stall = results.get("stall")
    if stall:
        lines.append("")
        lines.append(f"longest event-loop stall (ms), {human_size(stall['state_bytes'])} state")
        for key, value in stall.items():
            if key.endswith("_ms"):
                lines.append(f"  {key[:-3]:28} {value:8.2f}")
    memory = results.get("memory")
    if memory:
        lines.append("")
        lines.append(
            f"bytes per stored version beyond the payload (MEMORY USAGE, {memory['states']} "
            f"states x {memory['saves_per_state']} saves): all / Redis's own per-value cost / added"
        )
        rows = [(f"recostate {codec}", memory.get(codec)) for codec in ("lz4", "zlib", "none")]
        rows.append(("redis-py by hand", memory.get("hand_written_lz4")))
        for name, row in rows:
            if row:
                lines.append(
                    f"  {name:18} {row['overhead_per_version']:8.1f} "
                    f"{row['redis_value_cost']:8.1f} {row['added_per_version']:8.1f}"
                )
    soak = results.get("soak")
    if soak:
        lines.append("")
        lines.append(
            f"soak: {soak['operations']} ops in {soak['seconds']:.0f} s, {soak['errors']} errors, "
            f"RSS MiB {soak['samples_mib']}, growth {soak['growth_mib']} MiB"
        )
    lines.append("")
    lines.append("targets (ratios within this run)")
    for target in results["targets"]:
        mark = {True: "PASS", False: "MISS", None: "n/a "}[target["ok"]]
        lines.append(f"  [{mark}] {target['target']}: {target['value']} (want {target['want']})")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results as JSON."""
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Draw throughput against concurrency, one panel per operation and size.

    Returns a note instead when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    cells = [c for c in results["cells"] if not c["note"]]
    sizes = sorted({c["size"] for c in cells})
    ops = [op for op in ("save", "load", "mix") if any(c["op"] == op for c in cells)]
    names = list(dict.fromkeys(c["contender"] for c in cells))
    fig, axes = plt.subplots(
        len(ops), len(sizes), figsize=(4 * len(sizes), 3.2 * len(ops)), squeeze=False
    )
    ceiling = {
        (entry["size"], entry["pipeline"]): entry
        for entry in results.get("ceiling", [])
        if "skipped" not in entry
    }
    for row, op in enumerate(ops):
        for col, size in enumerate(sizes):
            ax = axes[row][col]
            for index, name in enumerate(names):
                for loop, style in (("asyncio", "-"), ("uvloop", ":")):
                    points = sorted(
                        (c["tasks"], c["ops_per_s"])
                        for c in cells
                        if c["contender"] == name and c["op"] == op and c["size"] == size
                        and c["loop"] == loop
                    )
                    if points:
                        ax.plot(
                            [p[0] for p in points],
                            [p[1] for p in points],
                            style,
                            marker="o",
                            color=f"C{index}",
                            label=f"{name} ({loop})",
                        )
            for pipeline, style in ((1, "--"), (16, "-.")):
                entry = ceiling.get((size, pipeline))
                key = "set_per_s" if op == "save" else "get_per_s"
                if entry and key in entry:
                    ax.axhline(
                        entry[key], linestyle=style, color="grey", linewidth=0.8,
                        label=f"redis-benchmark -P {pipeline}",
                    )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{op}, {human_size(size)}")
            ax.set_xlabel("concurrent tasks")
            ax.set_ylabel("ops/s")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize="small")
    fig.suptitle(f"recostate benchmarks ({results['mode']}): {results['machine']['summary']}")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def markdown(results: dict[str, Any]) -> str:
    """Return the figures of a run as Markdown (for docs/performance.md)."""
    machine = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    out = [
        f"Run of {results['started_at']} ({results['mode']}, {results['elapsed_s']} s): "
        f"{machine['summary']}; {machine['platform']}; load average at start "
        f"{machine.get('load_average_at_start')}; OpenTelemetry spans in recostate "
        f"{'on' if machine.get('opentelemetry_active') else 'off'}. {results['server']}. "
        f"Packages: {packages}.",
        "",
        "| target | this run | wanted | |",
        "| --- | ---: | ---: | --- |",
    ]
    for target in results["targets"]:
        mark = {True: "met", False: "missed", None: "n/a"}[target["ok"]]
        out.append(f"| {target['target']} | {target['value']} | {target['want']} | {mark} |")
    cells = results["cells"]
    names = list(dict.fromkeys(cell["contender"] for cell in cells))
    out += [
        "",
        "Throughput in operations per second, with p50 / p99 latency in ms:",
        "",
        "| loop | size | op | tasks | " + " | ".join(names) + " |",
        "| --- | --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    keys = list(dict.fromkeys((c["loop"], c["size"], c["op"], c["tasks"]) for c in cells))
    for loop, size, op, tasks in keys:
        row = []
        for name in names:
            cell = _cell(cells, contender=name, loop=loop, size=size, op=op, tasks=tasks)
            if cell is None:
                row.append("")
            elif cell["note"]:
                row.append(cell["note"].replace("skipped: ", ""))
            else:
                row.append(f"{cell['ops_per_s']:.0f} ({cell['p50_ms']:.2f} / {cell['p99_ms']:.1f})")
        out.append(f"| {loop} | {human_size(size)} | {op} | {tasks} | " + " | ".join(row) + " |")
    ceiling = [e for e in results.get("ceiling", []) if "skipped" not in e]
    if ceiling:
        out += ["", "Server ceiling, `redis-benchmark` with 64 clients:", ""]
        out += ["| size | pipeline | SET/s | GET/s |", "| --- | ---: | ---: | ---: |"]
        for entry in ceiling:
            out.append(
                f"| {human_size(entry['size'])} | {entry['pipeline']} | "
                f"{entry.get('set_per_s', 0):.0f} | {entry.get('get_per_s', 0):.0f} |"
            )
    stall = results.get("stall")
    if stall:
        out += [
            "",
            f"Longest event-loop stall (ms, median of runs) around one "
            f"{human_size(stall['state_bytes'])} state:",
            "",
            "| | save | load |",
            "| --- | ---: | ---: |",
            f"| codec inline (msgspec, LZ4, CRC-32) | {stall['inline_codec_save_ms']} | "
            f"{stall['inline_codec_load_ms']} |",
            f"| msgspec encoding alone | {stall['msgspec_encode_only_ms']} | |",
            f"| recostate | {stall['recostate_save_ms']} | {stall['recostate_load_ms']} |",
            f"| redis-py by hand | {stall['hand_written_save_ms']} | "
            f"{stall['hand_written_load_ms']} |",
        ]
    memory = results.get("memory")
    if memory:
        out += [
            "",
            f"Bytes per stored version beyond the payload (`MEMORY USAGE`, "
            f"{memory['states']} states x {memory['saves_per_state']} saves):",
            "",
            "| | all | Redis's own per-value cost | added |",
            "| --- | ---: | ---: | ---: |",
        ]
        rows = [(f"recostate, {codec}", memory.get(codec)) for codec in ("lz4", "zlib", "none")]
        rows.append(("redis-py by hand, lz4", memory.get("hand_written_lz4")))
        for name, row in rows:
            if row:
                out.append(
                    f"| {name} | {row['overhead_per_version']} | {row['redis_value_cost']} | "
                    f"{row['added_per_version']} |"
                )
    soak = results.get("soak")
    if soak:
        out += [
            "",
            f"Soak: {soak['operations']} operations in {soak['seconds']:.0f} s from "
            f"{soak['tasks']} tasks, {soak['errors']} errors; RSS (MiB) "
            f"{soak['samples_mib']}; live objects {soak['gc_objects']}; growth "
            f"{soak['growth_mib']} MiB.",
        ]
    return "\n".join(out) + "\n"
