"""The outputs of a run: the targets, a table on stdout, JSON, Markdown and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.impls import HAND, RECOSTATE
from benchmarks.workloads import KiB, MiB


def human_size(size: int) -> str:
    """Return ``1 KiB``, ``64 KiB``, ``8 MiB``..."""
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"


def _cell(cells: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for cell in cells:
        if all(cell.get(k) == v for k, v in match.items()) and not cell.get("note"):
            return cell
    return None


def _ratio(cells: list[dict[str, Any]], field: str, **match: Any) -> float | None:
    """recostate's ``field`` over the hand-written code's, in the cells that ``match``."""
    ours = _cell(cells, contender=RECOSTATE, **match)
    hand = _cell(cells, contender=HAND, **match)
    if not ours or not hand or not ours[field] or not hand[field]:
        return None
    return round(float(ours[field]) / float(hand[field]), 2)


def _cpu_ratio(cells: list[dict[str, Any]], **match: Any) -> float | None:
    """The hand-written code's CPU per operation (client + server) over recostate's.

    On a machine whose cores the client and the server share, throughput
    follows total CPU per operation; this ratio moves far less than the
    throughput ratio when the machine's background load changes.
    """
    ours = _cell(cells, contender=RECOSTATE, **match)
    hand = _cell(cells, contender=HAND, **match)
    if not ours or not hand:
        return None
    mine = ours["client_cpu_us"] + ours["server_cpu_us"]
    theirs = hand["client_cpu_us"] + hand["server_cpu_us"]
    return round(theirs / mine, 2) if mine else None


def _target(
    out: list[dict[str, Any]], name: str, value: float | None, want: float, *, at_most: bool
) -> None:
    ok = None if value is None else (value <= want if at_most else value >= want)
    out.append(
        {"target": name, "value": value, "want": f"{'<=' if at_most else '>='} {want}", "ok": ok}
    )


def line_targets(line: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues' targets that one server line's results can be held to (ratios within the run)."""
    cells = line["cells"]
    seed = {"config": "seed", "loop": "asyncio"}
    out: list[dict[str, Any]] = []
    _target(
        out,
        "save throughput, 64 tasks, 1 KiB: recostate / by hand",
        _ratio(cells, "ops_per_s", op="save", tasks=64, size=KiB, **seed),
        4.0,
        at_most=False,
    )
    _target(
        out,
        "load throughput, 64 tasks, 1 KiB: recostate / by hand",
        _ratio(cells, "ops_per_s", op="load", tasks=64, size=KiB, **seed),
        2.5,
        at_most=False,
    )
    for op in ("save", "load"):
        _target(
            out,
            f"p50 {op} latency, 1 task, 1 KiB: recostate / by hand",
            _ratio(cells, "p50_ms", op=op, tasks=1, size=KiB, **seed),
            1.0,
            at_most=True,
        )
    for op in ("save", "load"):
        _target(
            out,
            f"{op} throughput, 1 task, 1 MiB: recostate / by hand",
            _ratio(cells, "ops_per_s", op=op, tasks=1, size=MiB, **seed),
            1.0,
            at_most=False,
        )
    stall = line.get("stall") or {}
    if "save_ratio" in stall:
        _target(
            out,
            f"loop stall saving a {human_size(stall['state_bytes'])} state: recostate / inline codec",
            stall["save_ratio"],
            0.5,
            at_most=True,
        )
    storage = line.get("storage") or {}
    for run in storage.get("history", []):
        default = run["variants"]["default"]
        _target(
            out,
            f"memory of {run['steps']} kept versions of a growing state / the final state once",
            default["ratio_memory_usage"],
            2.0,
            at_most=True,
        )
    append = storage.get("append")
    if append:
        _target(
            out,
            f"bytes sent appending one message to a {human_size(append['state_bytes'])} state (KiB)",
            round(append["variants"]["default"]["append_bytes_median"] / KiB, 1),
            16,
            at_most=True,
        )
    big = storage.get("big_load") or {}
    if "default_over_whole_p50" in big:
        _target(
            out,
            "load of a ~1 MiB state, chunked / whole (p50)",
            big["default_over_whole_p50"],
            1.2,
            at_most=True,
        )
    cost = storage.get("save_cost")
    if cost:
        _target(
            out,
            "server CPU per save with a TTL, 100 kept / 10 kept",
            cost["ttl_100_over_10"],
            1.25,
            at_most=True,
        )
        _target(
            out,
            "server CPU per save, with a TTL / without",
            cost["ttl_over_no_ttl"],
            1.25,
            at_most=True,
        )
    memory = line.get("memory") or {}
    if "lz4" in memory:
        _target(
            out,
            "bytes a version costs beyond its lz4 payload, net of Redis's own per-value cost",
            memory["lz4"]["added_per_version"],
            200,
            at_most=True,
        )
    return out


def run_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets that span the run: the moonshot, the soak, the agent graph."""
    out: list[dict[str, Any]] = []
    for line in results["lines"]:
        if line["line"] == "redis-7.0":
            cell = _cell(
                line["cells"], contender=RECOSTATE, op="save", tasks=64, size=KiB,
                config="seed", loop="asyncio",
            )
            _target(
                out,
                "moonshot: recostate saves/s, 64 tasks, 1 KiB, Redis 7.0",
                cell["ops_per_s"] if cell else None,
                25_000,
                at_most=False,
            )
    soak = results.get("soak")
    if soak:
        out.append(
            {
                "target": f"in-process memory flat over a {soak['seconds']:.0f} s soak (growth MiB)",
                "value": soak["growth_mib"],
                "want": "flat",
                "ok": soak["flat"],
            }
        )
    graph = results.get("agent_graph") or {}
    rows = {row["name"]: row for row in graph.get("results", [])}
    ours = rows.get("recostate")
    peers = [rows[name] for name in ("plainredis", "langgraph-redis") if name in rows]
    if graph.get("results"):
        best = max((p["steps_per_s"] for p in peers), default=0)
        lean = min((p["server_memory_per_thread"] or 0 for p in peers), default=0)
        memory = rows.get("InMemorySaver")
        _target(
            out,
            "agent graph steps/s: recostate / the best Redis peer",
            round(ours["steps_per_s"] / best, 2) if ours and best else None,
            1.5,
            at_most=False,
        )
        _target(
            out,
            "agent graph steps/s: recostate / InMemorySaver",
            round(ours["steps_per_s"] / memory["steps_per_s"], 2) if ours and memory else None,
            0.8,
            at_most=False,
        )
        # recostate's memory is the larger of the used_memory delta and its
        # keys' exact MEMORY USAGE: the delta can be lowered by what another
        # checkpointer frees meanwhile.
        mine = max(
            (ours or {}).get("server_memory_per_thread") or 0,
            (ours or {}).get("key_memory_per_thread") or 0,
        )
        _target(
            out,
            "agent graph server memory per thread: recostate / the leanest Redis peer",
            round(mine / lean, 2) if ours and lean else None,
            0.2,
            at_most=True,
        )
    return out


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per server line: the headline ratios and where the time went."""
    rows = []
    for line in results["lines"]:
        cells = line["cells"]
        seed = {"config": "seed", "loop": "asyncio"}
        row: dict[str, Any] = {
            "line": line["line"],
            "server": line["label"],
            "save_64": _ratio(cells, "ops_per_s", op="save", tasks=64, size=KiB, **seed),
            "load_64": _ratio(cells, "ops_per_s", op="load", tasks=64, size=KiB, **seed),
            "save_64_cpu": _cpu_ratio(cells, op="save", tasks=64, size=KiB, **seed),
            "load_64_cpu": _cpu_ratio(cells, op="load", tasks=64, size=KiB, **seed),
            "p50_save_1": _ratio(cells, "p50_ms", op="save", tasks=1, size=KiB, **seed),
            "p50_load_1": _ratio(cells, "p50_ms", op="load", tasks=1, size=KiB, **seed),
            "stall_16mb": (line.get("stall") or {}).get("save_ratio"),
            "stall_16mb_load": (line.get("stall") or {}).get("load_ratio"),
            "mib_save_1": _ratio(cells, "ops_per_s", op="save", tasks=1, size=MiB, **seed),
            "mib_load_1": _ratio(cells, "ops_per_s", op="load", tasks=1, size=MiB, **seed),
            "no_ttl_save_64": _ratio(
                cells, "ops_per_s", op="save", tasks=64, size=KiB, config="no-ttl", loop="asyncio"
            ),
            "no_ttl_load_64": _ratio(
                cells, "ops_per_s", op="load", tasks=64, size=KiB, config="no-ttl", loop="asyncio"
            ),
            "split_64": {},
        }
        for config in ("seed", "no-ttl"):
            for op in ("save", "load"):
                for name in (RECOSTATE, HAND):
                    cell = _cell(
                        cells, contender=name, op=op, tasks=64, size=KiB, config=config,
                        loop="asyncio",
                    )
                    if cell:
                        row["split_64"][f"{config} {op} {name}"] = {
                            "ops_per_s": cell["ops_per_s"],
                            "client_cpu_us": cell["client_cpu_us"],
                            "server_cpu_us": cell["server_cpu_us"],
                        }
        rows.append(row)
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _cell_text(cell: dict[str, Any] | None, width: int) -> str:
    if cell is None:
        return f"{'-':>{width}}"
    if cell["note"]:
        return f"{cell['note'][:width]:>{width}}"
    text = (
        f"{cell['ops_per_s']:.0f} ({cell['p50_ms']:.2f}/{cell['p99_ms']:.1f}) "
        f"{cell['client_cpu_us']:.0f}+{cell['server_cpu_us']:.0f}"
    )
    if cell["errors"]:
        text += f" E{cell['errors']}"
    return f"{text:>{width}}"


def _storage_lines(storage: dict[str, Any]) -> list[str]:
    lines = [f"  storage variants: {storage['variants']}"]
    for run in storage.get("history", []):
        for name, v in run["variants"].items():
            lines.append(
                f"  history {run['states']} states x {run['steps']} versions ({name}): "
                f"MEMORY USAGE {v['all_versions']['memory_usage_bytes'] / KiB:.0f} KiB vs final "
                f"once {v['final_once']['memory_usage_bytes'] / KiB:.0f} KiB = "
                f"{v['ratio_memory_usage']}x (used_memory {_x(v['ratio_used_memory'])}); "
                f"final state {run['final_state_bytes'] / KiB:.1f} KiB"
            )
    append = storage.get("append")
    if append:
        for name, v in append["variants"].items():
            lines.append(
                f"  append one {append['message_bytes']} B message to a "
                f"{append['state_bytes'] / KiB:.0f} KiB state ({name}): "
                f"{v['append_bytes_median'] / KiB:.1f} KiB sent (by hand: "
                f"{append['hand_written_append_bytes_median'] / KiB:.1f} KiB)"
            )
    big = storage.get("big_load")
    if big:
        parts = [
            f"{c['contender']} p50 {c['p50_ms']:.2f} ms ({c['client_cpu_us']:.0f}+"
            f"{c['server_cpu_us']:.0f} us)"
            for c in big["cells"]
        ]
        lines.append(f"  load ~1 MiB, 1 task: {'; '.join(parts)}")
    cost = storage.get("save_cost")
    if cost:
        parts = [
            f"{c['contender']}: server {c['server_cpu_us']:.1f} us, client {c['client_cpu_us']:.1f} us"
            for c in cost["cells"]
        ]
        lines.append(f"  1 KiB saves, {cost['tasks']} tasks: {'; '.join(parts)}")
        lines.append(
            f"    server CPU ratios: TTL 100/10 kept {cost['ttl_100_over_10']}, "
            f"TTL / no TTL {cost['ttl_over_no_ttl']}"
        )
    return lines


def _probe_lines(found: dict[str, Any]) -> list[str]:
    if "skipped" in found:
        return [f"  command costs: {found['skipped']}"]
    lines = [f"  server us per command (redis-benchmark, {found['clients']} clients): -P 1 / -P 16"]
    for name, entry in found["commands"].items():
        texts = []
        for pipeline in ("P1", "P16"):
            value = entry.get(pipeline)
            texts.append("-" if not value else f"{value['server_cpu_us']:.2f}")
        lines.append(f"    {name:30} {texts[0]:>7} / {texts[1]:>7}")
    return lines


def table(results: dict[str, Any]) -> str:
    """Return the human-readable report."""
    machine = results["machine"]
    lines = [f"recostate benchmarks ({results['mode']}) on {machine['summary']}"]
    lines.append(
        f"load average at start: {machine.get('load_average_at_start')}; "
        f"OpenTelemetry spans in recostate: {'on' if machine.get('opentelemetry_active') else 'off'}"
    )
    lines.append(f"configurations: {results['configs']}")
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    lines.append("")
    lines.append("summary: recostate / by hand, seed settings (x: times better; p50: times the latency)")
    lines.append(
        f"  {'server':14} {'save64':>7} {'load64':>7} {'p50 s':>7} {'p50 l':>7} {'stall s':>7} "
        f"{'stall l':>7} {'1MiB s':>7} {'1MiB l':>7} | CPU {'save64':>7} {'load64':>7} | no-ttl "
        f"{'save64':>7} {'load64':>7}"
    )
    for row in results.get("summary", []):
        lines.append(
            f"  {row['server']:14} {_x(row['save_64']):>7} {_x(row['load_64']):>7} "
            f"{_x(row['p50_save_1']):>7} {_x(row['p50_load_1']):>7} {_x(row['stall_16mb']):>7} "
            f"{_x(row['stall_16mb_load']):>7} {_x(row['mib_save_1']):>7} {_x(row['mib_load_1']):>7} |     "
            f"{_x(row['save_64_cpu']):>7} {_x(row['load_64_cpu']):>7} |        "
            f"{_x(row['no_ttl_save_64']):>7} {_x(row['no_ttl_load_64']):>7}"
        )
    for line in results["lines"]:
        cells = line["cells"]
        names = list(dict.fromkeys(cell["contender"] for cell in cells))
        lines.append("")
        lines.append(f"== {line['label']}: {line['server']}; server CPU from {line['cpu_source']}")
        lines.append("ops/s (p50/p99 ms) client+server CPU us per op")
        header = f"{'config':6} {'loop':7} {'size':>7} {'op':4} {'tasks':>5} | " + " | ".join(
            f"{name:>36}" for name in names
        )
        lines.append(header)
        lines.append("-" * len(header))
        keys = list(
            dict.fromkeys((c["config"], c["loop"], c["size"], c["op"], c["tasks"]) for c in cells)
        )
        for config, loop, size, op, tasks in keys:
            row = f"{config:6} {loop:7} {human_size(size):>7} {op:4} {tasks:>5} | "
            parts = []
            for name in names:
                match = [
                    c
                    for c in cells
                    if c["contender"] == name and c["config"] == config and c["loop"] == loop
                    and c["size"] == size and c["op"] == op and c["tasks"] == tasks
                ]
                parts.append(_cell_text(match[0] if match else None, 36))
            lines.append(row + " | ".join(parts))
        stall = line.get("stall")
        if stall:
            lines.append(
                f"  longest event-loop stall (ms), {human_size(stall['state_bytes'])} state: "
                + ", ".join(f"{k[:-3]} {v}" for k, v in stall.items() if k.endswith("_ms"))
            )
        memory = line.get("memory")
        if memory and "lz4" in memory:
            lines.append(
                "  bytes per stored version beyond the payload (all / Redis's own / added): "
                + "; ".join(
                    f"{name} {memory[key]['overhead_per_version']} / "
                    f"{memory[key]['redis_value_cost']} / {memory[key]['added_per_version']}"
                    for name, key in (
                        ("lz4", "lz4"), ("zlib", "zlib"), ("none", "none"), ("by hand", "hand_written_lz4")
                    )
                    if key in memory
                )
            )
        if line.get("storage"):
            lines.extend(_storage_lines(line["storage"]))
        if line.get("probes"):
            lines.extend(_probe_lines(line["probes"]))
        for entry in line.get("ceiling") or []:
            if "skipped" not in entry:
                lines.append(
                    f"  redis-benchmark {human_size(entry['size'])} 64 clients -P {entry['pipeline']}: "
                    f"SET {entry.get('set_per_s', 0):.0f}/s GET {entry.get('get_per_s', 0):.0f}/s"
                )
        for name, message in (line.get("failed") or {}).items():
            lines.append(f"  FAILED {name}: {message}")
        lines.append("  targets:")
        for target in line["targets"]:
            mark = {True: "PASS", False: "MISS", None: "n/a "}[target["ok"]]
            lines.append(f"    [{mark}] {target['target']}: {target['value']} (want {target['want']})")
    soak = results.get("soak")
    if soak:
        lines.append("")
        lines.append(
            f"soak ({soak['line']}): {soak['operations']} ops in {soak['seconds']:.0f} s, "
            f"{soak['errors']} errors, RSS MiB {soak['samples_mib']}, growth {soak['growth_mib']} MiB"
        )
    graph = results.get("agent_graph")
    if graph:
        from benchmarks.agent_graph import table as graph_table

        lines.append("")
        lines.append(graph_table(graph))
    lines.append("")
    lines.append("run targets")
    for target in results["targets"]:
        mark = {True: "PASS", False: "MISS", None: "n/a "}[target["ok"]]
        lines.append(f"  [{mark}] {target['target']}: {target['value']} (want {target['want']})")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results as JSON."""
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Draw, per server line, 1 KiB throughput against tasks and where the CPU time went.

    A last row shows the agent graph, when it ran. Returns a note instead when
    matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    lines = results["lines"]
    graph = results.get("agent_graph") or {}
    rows = len(lines) + (1 if graph.get("results") else 0)
    if rows == 0:
        return "nothing to draw"
    fig, axes = plt.subplots(rows, 3, figsize=(15, 3.6 * rows), squeeze=False)
    for index, line in enumerate(lines):
        cells = [c for c in line["cells"] if not c["note"] and c["size"] == KiB]
        names = list(dict.fromkeys(c["contender"] for c in cells))
        for col, op in enumerate(("save", "load")):
            ax = axes[index][col]
            for number, name in enumerate(names):
                for config, style in (("seed", "-"), ("no-ttl", ":")):
                    points = sorted(
                        (c["tasks"], c["ops_per_s"])
                        for c in cells
                        if c["contender"] == name and c["op"] == op and c["config"] == config
                        and c["loop"] == "asyncio"
                    )
                    if len(points) > 0:
                        ax.plot(
                            [p[0] for p in points],
                            [p[1] for p in points],
                            style,
                            marker="o",
                            color=f"C{number}",
                            label=f"{name} ({config})",
                        )
            ax.set_xscale("log", base=2)
            ax.set_title(f"{line['label']}: 1 KiB {op}")
            ax.set_xlabel("concurrent tasks")
            ax.set_ylabel("ops/s")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="x-small")
        ax = axes[index][2]
        bars: list[tuple[str, float, float]] = []
        for op in ("save", "load"):
            for name in (RECOSTATE, HAND):
                cell = _cell(
                    line["cells"], contender=name, op=op, tasks=64, size=KiB, config="seed",
                    loop="asyncio",
                )
                if cell:
                    short = "recostate" if name == RECOSTATE else "by hand"
                    bars.append((f"{op}\n{short}", cell["client_cpu_us"], cell["server_cpu_us"]))
        if bars:
            xs = range(len(bars))
            ax.bar(xs, [b[1] for b in bars], label="client CPU", color="C0")
            ax.bar(xs, [b[2] for b in bars], bottom=[b[1] for b in bars], label="server CPU", color="C3")
            ax.set_xticks(list(xs), [b[0] for b in bars], fontsize="small")
            ax.set_ylabel("CPU us per operation")
            ax.set_title(f"{line['label']}: 64 tasks, 1 KiB, seed settings")
            ax.legend(fontsize="x-small")
    if graph.get("results"):
        row = axes[len(lines)]
        data = graph["results"]
        names = [r["name"] for r in data]
        _bars(row[0], names, [r["steps_per_s"] for r in data], "steps/s", "agent graph: steps/s")
        _bars(
            row[1],
            names,
            [(r["server_memory_per_thread"] or 0) / KiB for r in data],
            "KiB",
            "server memory per thread",
        )
        _bars(
            row[2],
            names,
            [(r["bytes_sent_per_step"] or 0) / KiB for r in data],
            "KiB",
            "bytes sent per step",
        )
    fig.suptitle(f"recostate benchmarks ({results['mode']}): {results['machine']['summary']}")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return None


def _bars(ax: Any, names: list[str], values: list[float], unit: str, title: str) -> None:
    ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
    ax.set_xticks(list(range(len(names))), names, fontsize="x-small", rotation=15)
    ax.set_ylabel(unit)
    ax.set_title(title)


def _md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    marks = align or "".join("l" if i == 0 else "r" for i in range(len(header)))
    out = ["| " + " | ".join(header) + " |"]
    out.append("| " + " | ".join("---" if m == "l" else "---:" for m in marks) + " |")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def markdown(results: dict[str, Any]) -> str:
    """Return the figures of a run as Markdown (for docs/performance.md)."""
    machine = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    out = [
        f"Run of {results['started_at']} ({results['mode']}, {results['elapsed_s']} s): "
        f"{machine['summary']}; {machine['platform']}; load average at start "
        f"{machine.get('load_average_at_start')}; OpenTelemetry spans in recostate "
        f"{'on' if machine.get('opentelemetry_active') else 'off'}. Packages: {packages}.",
        "",
        "Headline, recostate / the hand-written code (seed settings: "
        f"{results['configs']['seed']}; 1 KiB states; x = times the throughput, "
        "p50 = times the latency, stall = times the inline codec's):",
        "",
    ]
    out += _md_table(
        ["server", "save, 64 tasks", "load, 64 tasks", "p50 save, 1 task", "p50 load, 1 task",
         "16 MB save stall", "16 MB load stall", "~1 MiB save, 1 task", "~1 MiB load, 1 task",
         "CPU: save, 64", "CPU: load, 64", "no TTL: save, 64", "no TTL: load, 64"],
        [
            [
                row["server"], _x(row["save_64"]), _x(row["load_64"]), _x(row["p50_save_1"]),
                _x(row["p50_load_1"]), _x(row["stall_16mb"]), _x(row["stall_16mb_load"]),
                _x(row["mib_save_1"]),
                _x(row["mib_load_1"]), _x(row["save_64_cpu"]), _x(row["load_64_cpu"]),
                _x(row["no_ttl_save_64"]), _x(row["no_ttl_load_64"]),
            ]
            for row in results.get("summary", [])
        ],
    )
    out += [
        "",
        "CPU columns: the hand-written code's CPU per operation (client + server) over "
        "recostate's, the ratio throughput follows when client and server share the cores.",
    ]
    out += ["", "Where the time went, 64 tasks, 1 KiB (CPU µs per operation, client + server):", ""]
    split_rows = []
    for row in results.get("summary", []):
        for key, value in row["split_64"].items():
            split_rows.append(
                [row["server"], key, f"{value['ops_per_s']:.0f}", f"{value['client_cpu_us']:.1f}",
                 f"{value['server_cpu_us']:.1f}",
                 f"{value['client_cpu_us'] + value['server_cpu_us']:.1f}"]
            )
    out += _md_table(["server", "config, op, contender", "ops/s", "client µs", "server µs", "total µs"],
                     split_rows, "llrrrr")
    for line in results["lines"]:
        out += ["", f"### {line['label']}", "", f"{line['server']}; server CPU from {line['cpu_source']}.", ""]
        out += _md_table(
            ["target", "this run", "wanted", ""],
            [
                [t["target"], str(t["value"]), str(t["want"]),
                 {True: "met", False: "missed", None: "n/a"}[t["ok"]]]
                for t in line["targets"]
            ],
            "lrrl",
        )
        cells = line["cells"]
        names = list(dict.fromkeys(cell["contender"] for cell in cells))
        out += ["", "ops/s (p50 / p99 ms) client + server CPU µs per op:", ""]
        keys = list(
            dict.fromkeys((c["config"], c["loop"], c["size"], c["op"], c["tasks"]) for c in cells)
        )
        rows = []
        for config, loop, size, op, tasks in keys:
            row = [config, loop, human_size(size), op, str(tasks)]
            for name in names:
                match = [
                    c for c in cells
                    if c["contender"] == name and c["config"] == config and c["loop"] == loop
                    and c["size"] == size and c["op"] == op and c["tasks"] == tasks
                ]
                cell = match[0] if match else None
                if cell is None:
                    row.append("")
                elif cell["note"]:
                    row.append(cell["note"].replace("skipped: ", ""))
                else:
                    row.append(
                        f"{cell['ops_per_s']:.0f} ({cell['p50_ms']:.2f} / {cell['p99_ms']:.1f}) "
                        f"{cell['client_cpu_us']:.0f} + {cell['server_cpu_us']:.0f}"
                    )
            rows.append(row)
        out += _md_table(["config", "loop", "size", "op", "tasks", *names], rows, "lllll" + "r" * len(names))
        extra = []
        if line.get("storage"):
            extra += _storage_lines(line["storage"])
        if line.get("probes"):
            extra += _probe_lines(line["probes"])
        stall = line.get("stall")
        if stall:
            extra.append(
                f"  longest event-loop stall (ms), {human_size(stall['state_bytes'])} state: "
                + ", ".join(f"{k[:-3]} {v}" for k, v in stall.items() if k.endswith("_ms"))
            )
        extra += [f"  FAILED {name}: {message}" for name, message in (line.get("failed") or {}).items()]
        if extra:
            out += ["", "```text", *(e[2:] for e in extra), "```"]
    graph = results.get("agent_graph")
    if graph and "results" in graph:
        from benchmarks.agent_graph import table as graph_table

        out += ["", "### Agent graph", "", "```text", graph_table(graph), "```"]
        out += ["", "Peers: " + ", ".join(f"{k} {v}" for k, v in graph["packages"].items() if v) + "."]
    out += ["", "Run targets:", ""]
    out += _md_table(
        ["target", "this run", "wanted", ""],
        [
            [t["target"], str(t["value"]), str(t["want"]),
             {True: "met", False: "missed", None: "n/a"}[t["ok"]]]
            for t in results["targets"]
        ],
        "lrrl",
    )
    if results.get("notes"):
        out += ["", "Notes: " + "; ".join(results["notes"]) + "."]
    return "\n".join(out) + "\n"


__all__ = [
    "human_size",
    "line_targets",
    "markdown",
    "run_targets",
    "summary",
    "table",
    "write_chart",
    "write_json",
]
