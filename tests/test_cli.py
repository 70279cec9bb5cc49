"""The ``recostate`` command, each subcommand against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from recostate import RedisStatePersistence, __version__
from recostate._storage.scripts import HEAD_FIELD, HEAD_RECORD
from recostate.cli import cli
from recostate.testing import EmbeddedCluster, EmbeddedRedis
from tests.layout import get_version, set_version, state_ttl


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def other_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture
def prefix() -> str:
    return f"clitest-{uuid.uuid4().hex[:10]}"


def run(server: EmbeddedRedis, prefix: str, *args: str, **env: str) -> Result:
    """Invoke the command in-process with --url and --prefix set."""
    runner = CliRunner()
    return runner.invoke(
        cli, ["--url", server.url, "--prefix", prefix, *args], env={"REDIS_URL": None, **env}
    )


def seed(url: str, prefix: str, *steps: tuple[str, Any, dict[str, Any]]) -> None:
    async def work() -> None:
        async with RedisStatePersistence(url, key_prefix=prefix) as store:
            for state_id, state, options in steps:
                await store.save(state_id, state, **options)

    asyncio.run(work())


def with_store(url: str, prefix: str, work: Any) -> Any:
    async def inner() -> Any:
        async with RedisStatePersistence(url, key_prefix=prefix, max_versions=100) as store:
            return await work(store)

    return asyncio.run(inner())


def corrupt(url: str, prefix: str, state_id: str, version: int) -> None:
    client = redis.Redis.from_url(url)
    try:
        stored = get_version(client, prefix, state_id, version)
        # Flip the last two bytes: a fixed value could equal what is there.
        set_version(client, prefix, state_id, version, stored[:-2] + bytes(b ^ 0xFF for b in stored[-2:]))
    finally:
        client.close()


def test_help_texts_describe_every_command() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for name in ("demo", "bench", "ls", "show", "versions", "rollback", "rm", "prune", "touch",
                 "stats", "verify", "export", "import"):
        assert name in top.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "--url" in sub.output and "Usage: " in sub.output
    assert "REDIS_URL" in top.output and "--prefix" in top.output
    assert "recostate demo" in top.output  # the example lines are kept as written
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"recostate, version {__version__}"


def test_ls_lists_ids_filters_by_tag_and_prints_json(server: EmbeddedRedis, prefix: str) -> None:
    seed(
        server.url,
        prefix,
        ("b-agent", {"step": 1}, {"tags": ["agents"]}),
        ("a-session", {"user": "ada"}, {}),
    )
    plain = run(server, prefix, "ls")
    assert plain.exit_code == 0
    assert plain.output.splitlines() == ["a-session", "b-agent"]
    tagged = run(server, prefix, "ls", "--tag", "agents")
    assert tagged.output.splitlines() == ["b-agent"]
    listed = json.loads(run(server, prefix, "ls", "--json").output)
    assert [item["state_id"] for item in listed] == ["a-session", "b-agent"]
    assert listed[1]["version"] == 1 and listed[1]["tags"] == ["agents"]
    long_ = run(server, prefix, "ls", "-l")
    assert long_.output.splitlines()[0].split()[:2] == ["ID", "HEAD"]
    empty = run(server, f"{prefix}-empty", "ls")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert empty.stderr == f"no states under key prefix '{prefix}-empty'\n"
    assert json.loads(run(server, f"{prefix}-empty", "ls", "--json").stdout) == []


def test_show_prints_state_as_json_with_metadata(server: EmbeddedRedis, prefix: str) -> None:
    seed(
        server.url,
        prefix,
        ("agent-7", {"step": 1, "blob": b"\x00\x01"}, {"tags": ["agents"]}),
        ("agent-7", {"step": 2}, {"ttl": 600}),
    )
    head = run(server, prefix, "show", "agent-7")
    assert head.exit_code == 0, head.output
    lines = head.output.splitlines()
    assert "version:" in lines[1] and lines[1].split()[-1] == "2"
    assert any(line.startswith("expires_in:") and line.endswith(" s") for line in lines)
    assert json.loads(head.output.split("state:\n", 1)[1]) == {"step": 2}
    first = json.loads(run(server, prefix, "show", "agent-7", "--version", "1", "--json").output)
    assert first["metadata"]["version"] == 1 and first["metadata"]["tags"] == ["agents"]
    assert first["state"] == {"step": 1, "blob": "AAE="}  # bytes shown as base64
    only = run(server, prefix, "show", "agent-7", "-s")
    assert json.loads(only.output) == {"step": 2}


def test_versions_table_lists_each_version_and_rollback_origin(
    server: EmbeddedRedis, prefix: str
) -> None:
    seed(
        server.url,
        prefix,
        ("doc", {"text": "x" * 5000}, {"tags": ["big"]}),
        ("doc", {"text": "short"}, {}),
    )
    assert run(server, prefix, "rollback", "doc", "1").exit_code == 0
    table = run(server, prefix, "versions", "doc")
    assert table.exit_code == 0
    header, *rows = table.output.splitlines()
    assert header.split()[:2] == ["VERSION", "UPDATED"] and "ROLLED BACK FROM" in header
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert "lz4" in rows[0] and "big" in rows[0]
    assert rows[2].split()[-1] == "1" and rows[1].split()[-1] == "-"
    listed = json.loads(run(server, prefix, "versions", "doc", "--json").output)
    assert [item["rolled_back_from"] for item in listed] == [None, None, 1]


def test_rollback_writes_a_new_head_and_keeps_the_expiry(
    server: EmbeddedRedis, prefix: str
) -> None:
    seed(server.url, prefix, ("s", {"v": 1}, {"ttl": 900}), ("s", {"v": 2}, {"ttl": 900}))
    result = run(server, prefix, "rollback", "s", "1")
    assert result.exit_code == 0
    assert result.output.strip() == "s: version 3 restores version 1"

    async def check(store: RedisStatePersistence) -> None:
        assert await store.load("s") == {"v": 1}
        ttl = state_ttl(server.url, prefix, "s")
        assert 0 < ttl <= 900_000

    with_store(server.url, prefix, check)
    missing = run(server, prefix, "rollback", "s", "9")
    assert missing.exit_code == 1
    assert "has no stored version 9 (stored: 1, 2, 3)" in missing.output


def test_rm_deletes_a_version_or_the_whole_state(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, ("s", 1, {}), ("s", 2, {}), ("s", 3, {}))
    assert run(server, prefix, "rm", "s", "--version", "2").output.strip() == "deleted s version 2"
    assert [m.version for m in with_store(server.url, prefix, lambda s: s.list_versions("s"))] == [
        1,
        3,
    ]
    assert run(server, prefix, "rm", "s", "--version", "2").exit_code == 1
    assert run(server, prefix, "rm", "s").output.strip() == "deleted s"
    again = run(server, prefix, "rm", "s")
    assert again.exit_code == 1 and "no state 's'" in again.output


def test_prune_keeps_the_newest_versions(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, *[("s", n, {}) for n in range(1, 6)])
    result = run(server, prefix, "prune", "s", "--keep", "2")
    assert result.exit_code == 0 and result.output.strip() == "s: removed 3 version(s)"
    kept = with_store(server.url, prefix, lambda s: s.list_versions("s"))
    assert [m.version for m in kept] == [4, 5]
    assert run(server, prefix, "prune", "s").exit_code == 2  # --keep is required


def test_touch_sets_and_removes_the_expiry(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, ("s", 1, {}))
    assert run(server, prefix, "touch", "s", "--ttl", "100").exit_code == 0
    ttl = state_ttl(server.url, prefix, "s")
    assert 0 < ttl <= 100_000
    assert run(server, prefix, "touch", "s", "--persist").output.strip() == "s: never expires"
    assert state_ttl(server.url, prefix, "s") == -1
    assert run(server, prefix, "touch", "s").exit_code == 2
    assert run(server, prefix, "touch", "nope", "--ttl", "5").exit_code == 1


def test_stats_counts_states_versions_and_bytes(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, ("a", {"t": "y" * 4000}, {}), ("a", 2, {}), ("b", 3, {}))
    figures = json.loads(run(server, prefix, "stats", "--json").output)
    assert figures["states"] == 2 and figures["versions"] == 3
    assert figures["bytes_encoded"] > figures["bytes_stored"] > 0
    assert figures["redis_info"]["used_memory"] > 0
    text = run(server, prefix, "stats").output
    assert "states:" in text and "Redis " in text


def test_verify_passes_then_fails_on_a_corrupted_version(
    server: EmbeddedRedis, prefix: str
) -> None:
    seed(
        server.url,
        prefix,
        ("good", 1, {"tags": ["t"]}),
        ("bad", {"x": 1}, {}),
        ("bad", {"x": 2}, {}),
    )
    sound = run(server, prefix, "verify")
    assert sound.exit_code == 0
    assert "checked 3 version(s) of 2 state(s): all sound" in sound.output
    corrupt(server.url, prefix, "bad", 1)
    damaged = run(server, prefix, "verify")
    assert damaged.exit_code == 1
    assert "FAILED 'bad' version 1: checksum mismatch" in damaged.output
    assert "1 failed" in damaged.output
    assert run(server, prefix, "verify", "--tag", "t").exit_code == 0
    shown = run(server, prefix, "show", "bad", "--version", "1")
    assert shown.exit_code == 1 and "integrity check failed:" in shown.output


def test_export_and_import_move_every_version_between_servers(
    server: EmbeddedRedis, other_server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    seed(
        server.url,
        prefix,
        ("agent-7", {"step": 1, "when": "x" * 3000}, {"tags": ["agents"]}),
        ("agent-7", {"step": 2}, {"tags": ["agents"]}),
        ("session", {"user": "ada", "raw": b"\x00"}, {"ttl": 600}),
        ("other", [1, 2, 3], {}),
    )
    assert run(server, prefix, "rollback", "agent-7", "1").exit_code == 0
    backup = tmp_path / "backup.jsonl"
    out = run(server, prefix, "export", "-o", str(backup), "--with-state")
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in backup.read_text().splitlines()]
    assert lines[0]["format"] == "recostate-export"
    assert sum(1 for line in lines[1:] if line["state_id"] == "agent-7") == 3

    imported = run(other_server, prefix, "import", str(backup))
    assert imported.exit_code == 0, imported.output
    assert "imported 5 version(s) of 3 state(s)" in imported.output

    async def snapshot(store: RedisStatePersistence) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for state_id in sorted(await store.list_states()):
            versions = await store.list_versions(state_id)
            out[state_id] = [
                (meta, await store.load(state_id, meta.version)) for meta in versions
            ]
        out["agents"] = await store.list_states(tag="agents")
        return out

    source = with_store(server.url, prefix, snapshot)
    target = with_store(other_server.url, prefix, snapshot)
    assert target == source
    ttl = state_ttl(other_server.url, prefix, "session")
    assert 0 < ttl <= 600_000


def test_import_refuses_skips_or_replaces_existing_states(
    server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    seed(server.url, prefix, ("s", {"v": 1}, {}))
    backup = tmp_path / "one.jsonl"
    assert run(server, prefix, "export", "-o", str(backup)).exit_code == 0
    seed(server.url, prefix, ("s", {"v": 2}, {}))

    refused = run(server, prefix, "import", str(backup))
    assert refused.exit_code == 1 and "already exists" in refused.output
    skipped = run(server, prefix, "import", "--existing", "skip", str(backup))
    assert skipped.exit_code == 0 and "1 existing state(s) skipped" in skipped.output
    assert with_store(server.url, prefix, lambda s: s.load("s")) == {"v": 2}
    replaced = run(server, prefix, "import", "--existing", "replace", str(backup))
    assert replaced.exit_code == 0
    assert with_store(server.url, prefix, lambda s: s.load("s")) == {"v": 1}


def test_import_from_standard_input_and_refusal_of_other_files(
    server: EmbeddedRedis, prefix: str
) -> None:
    seed(server.url, prefix, ("s", {"v": 1}, {}))
    exported = run(server, prefix, "export")
    dump = exported.stdout
    fresh = f"{prefix}-copy"
    piped = CliRunner().invoke(
        cli, ["--url", server.url, "--prefix", fresh, "import", "-"], input=dump
    )
    assert piped.exit_code == 0, piped.output
    assert with_store(server.url, fresh, lambda s: s.load("s")) == {"v": 1}
    bad = CliRunner().invoke(
        cli, ["--url", server.url, "--prefix", fresh, "import", "-"], input='{"a": 1}\n'
    )
    assert bad.exit_code == 1 and "not a recostate export" in bad.output
    broken = CliRunner().invoke(
        cli,
        ["--url", server.url, "--prefix", fresh, "import", "-"],
        input=dump.splitlines()[0] + "\n{not json\n",
    )
    assert broken.exit_code == 1 and "line 2: not JSON" in broken.output


def test_url_and_prefix_come_from_the_environment_or_after_the_command(
    server: EmbeddedRedis, prefix: str
) -> None:
    seed(server.url, prefix, ("s", 1, {}))
    runner = CliRunner()
    from_env = runner.invoke(cli, ["ls"], env={"REDIS_URL": server.url, "RECOSTATE_PREFIX": prefix})
    assert from_env.output.splitlines() == ["s"]
    after = runner.invoke(cli, ["ls", "--url", server.url, "--prefix", prefix], env={"REDIS_URL": None})
    assert after.output.splitlines() == ["s"]


def test_demo_command_runs_on_a_given_server(server: EmbeddedRedis) -> None:
    result = CliRunner().invoke(cli, ["demo", "--url", server.url])
    assert result.exit_code == 0, result.output
    assert "rolled back: version 4 restores version 1" in result.output
    assert result.output.rstrip().endswith("Done.")


def test_bench_never_runs_code_from_the_current_directory(tmp_path: Path) -> None:
    # A directory someone else controls, holding a `benchmarks` package of its own.
    planted = tmp_path / "benchmarks"
    planted.mkdir()
    marker = tmp_path / "ran"
    (planted / "__init__.py").write_text("")
    (planted / "cli.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "def main(argv):\n"
        f"    Path({str(marker)!r}).write_text('ran')\n"
        "    return 0\n"
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RECOSTATE_PREFIX")}
    refused = subprocess.run(
        [sys.executable, "-m", "recostate", "bench", "--quick",
         "--url", "redis://ada:secret@127.0.0.1:6390/0", "--out", "results"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=environ,
    )
    assert not marker.exists()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
    # It says what to run instead, with the same arguments and the password masked.
    assert (
        "run `python -m benchmarks --quick --redis-url 'redis://ada:***@127.0.0.1:6390/0' "
        "--out results`" in refused.stderr
    )
    assert "secret" not in refused.stderr
    helped = CliRunner().invoke(cli, ["bench", "--help"])
    assert helped.exit_code == 0 and "--quick" in helped.output


def cli_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RECOSTATE_PREFIX")}
    return subprocess.run(
        [sys.executable, "-m", "recostate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
    )


def test_errors_are_one_line_and_never_a_traceback(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, ("s", {"v": 1}, {}), ("s", {"v": 2}, {}))
    corrupt(server.url, prefix, "s", 2)
    closed_port = EmbeddedRedis().port  # a free port nobody listens on
    cases = {
        "cannot reach Redis at": ["--url", f"redis://127.0.0.1:{closed_port}/0", "ls"],
        "invalid setting: redis_url": ["--url", "http://example.invalid", "ls"],
        "no state 'missing'": ["--url", server.url, "--prefix", prefix, "show", "missing"],
        "integrity check failed: state 's' version 2": ["--url", server.url, "--prefix", prefix, "show", "s"],
        "at redis://ada:***@127.0.0.1": ["--url", f"redis://ada:secret@127.0.0.1:{closed_port}/0", "ls"],
    }
    for expected, args in cases.items():
        result = cli_process(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
        assert expected in result.stderr
        assert result.stdout == "" and "secret" not in result.stderr
    no_binary = cli_process("demo", env={"RECOSTATE_REDIS_SERVER": str(Path("/nonexistent"))})
    assert no_binary.returncode == 1 and "Traceback" not in no_binary.stderr
    assert no_binary.stderr.startswith("Error: no redis-server to start a throwaway server")
    usage = cli_process("show")
    assert usage.returncode == 2 and "Missing argument 'STATE_ID'" in usage.stderr


def test_long_runs_draw_a_progress_bar_on_a_terminal(server: EmbeddedRedis, prefix: str) -> None:
    seed(server.url, prefix, *[(f"s{n}", n, {}) for n in range(30)])
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "recostate", "--url", server.url, "--prefix", prefix, "verify"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**environ, "COLUMNS": "100"},
    )
    os.close(follower)
    screen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    stdout, _ = process.communicate(timeout=30)
    os.close(leader)
    assert process.returncode == 0
    assert b"verifying" in screen and b"0/30" in screen
    assert b"[" + b"#" * 30 + b"]  30/30" in screen
    assert b"all sound" in stdout
    piped = cli_process("--url", server.url, "--prefix", prefix, "verify")
    assert piped.stderr == ""  # no bar when standard error is not a terminal


def test_commands_work_on_a_cluster_and_migrate_to_a_single_server(
    embedded_cluster: EmbeddedCluster, server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    embedded_cluster.wait_healthy()

    async def fill() -> None:
        async with RedisStatePersistence(
            embedded_cluster.url, key_prefix=prefix, cluster=True
        ) as store:
            for n in range(6):
                await store.save(f"agent-{n}", {"n": n}, tags=["agents"])
                await store.save(f"agent-{n}", {"n": n, "step": 2}, tags=["agents"])

    asyncio.run(fill())
    base = ["--url", embedded_cluster.url, "--cluster", "--prefix", prefix]
    runner = CliRunner()
    listed = runner.invoke(cli, [*base, "ls", "--tag", "agents"], env={"REDIS_URL": None})
    assert listed.output.splitlines() == [f"agent-{n}" for n in range(6)]
    assert runner.invoke(cli, [*base, "verify"]).output.endswith(
        "checked 12 version(s) of 6 state(s): all sound\n"
    )
    backup = tmp_path / "cluster.jsonl"
    assert runner.invoke(cli, [*base, "export", "-o", str(backup)]).exit_code == 0
    moved = run(server, prefix, "import", str(backup))
    assert moved.exit_code == 0 and "imported 12 version(s) of 6 state(s)" in moved.output
    assert run(server, prefix, "ls", "--tag", "agents").output.splitlines() == listed.output.splitlines()
    assert json.loads(run(server, prefix, "show", "agent-3", "-s").output) == {"n": 3, "step": 2}

    async def clean() -> None:
        async with RedisStatePersistence(
            embedded_cluster.url, key_prefix=prefix, cluster=True
        ) as store:
            for state_id in await store.list_states():
                await store.delete(state_id)

    asyncio.run(clean())


def test_signed_states_are_read_with_keys_from_the_environment(
    server: EmbeddedRedis, other_server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    key = b"k" * 32

    async def fill() -> None:
        async with RedisStatePersistence(
            server.url, key_prefix=prefix, signing_key=[("2026-11", key)]
        ) as store:
            await store.save("s", {"v": 1})
            await store.save("s", {"v": 2})

    asyncio.run(fill())
    keys_env = {"RECOSTATE_SIGNING_KEYS": f"2026-11:{key.hex()}"}
    unkeyed = run(server, prefix, "verify")
    assert unkeyed.exit_code == 1 and "has no signing_key to check it" in unkeyed.output
    keyed = run(server, prefix, "verify", **keys_env)
    assert keyed.exit_code == 0 and "all sound" in keyed.output
    assert json.loads(run(server, prefix, "show", "s", "-s", **keys_env).output) == {"v": 2}
    backup = tmp_path / "signed.jsonl"
    assert run(server, prefix, "export", "-o", str(backup), **keys_env).exit_code == 0
    assert run(other_server, prefix, "import", str(backup), **keys_env).exit_code == 0
    assert run(other_server, prefix, "verify", **keys_env).output.endswith(
        "checked 2 version(s) of 1 state(s): all sound\n"
    )
    bad = run(server, prefix, "ls", **{"RECOSTATE_SIGNING_KEYS": "2026-11:not-hex"})
    assert bad.exit_code == 1
    assert "invalid setting: RECOSTATE_SIGNING_KEYS" in bad.output


def test_a_server_wanting_a_password_says_how_to_give_it() -> None:
    with EmbeddedRedis(args=["--requirepass", "s3cret"]) as locked:
        bare = cli_process("--url", locked.url, "ls")
        wrong = cli_process("--url", f"redis://:wrong@127.0.0.1:{locked.port}/0", "ls")
        right = cli_process("--url", f"redis://:s3cret@127.0.0.1:{locked.port}/0", "ls")
    assert bare.returncode == 1 and bare.stderr.count("\n") == 1
    assert "wants a password: give it in the URL" in bare.stderr
    assert wrong.returncode == 1 and "refused the login" in wrong.stderr
    assert "wrong" not in wrong.stderr  # the password is masked
    assert right.returncode == 0 and right.stdout == ""


def chunked_state(steps: int) -> dict[str, Any]:
    return {"step": steps, "log": [f"entry {i}: " + "detail " * 150 for i in range(steps)]}


def test_export_and_import_copy_chunked_states_byte_for_byte(
    server: EmbeddedRedis, other_server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    seed(server.url, prefix, *[("grown", chunked_state(n), {"ttl": 900}) for n in range(2, 30)])
    backup = tmp_path / "chunked.jsonl"
    assert run(server, prefix, "export", "-o", str(backup)).exit_code == 0
    lines = [json.loads(line) for line in backup.read_text().splitlines()[1:]]
    # Each piece travels once, with the first version that needs it.
    carried = [ident for line in lines for ident in line.get("pieces", {})]
    assert carried and len(carried) == len(set(carried))
    assert sum("dictionary" in line for line in lines) == 1
    imported = run(other_server, prefix, "import", str(backup))
    assert imported.exit_code == 0, imported.output

    def stored(url: str) -> dict[bytes, Any]:
        client = redis.Redis.from_url(url)
        try:
            out: dict[bytes, Any] = {}
            for key in client.scan_iter(match=f"{prefix}*"):
                if b"}:c:" in key or b"}:v:" in key:
                    out[key] = client.hgetall(key)
                if b"}:v:" in key:
                    # The head's record carries the state's creation time,
                    # which an import does not carry over: its number and
                    # frame must match.
                    record = out[key].pop(HEAD_FIELD)
                    out[key][b"head"] = (HEAD_RECORD.unpack_from(record)[0], record[HEAD_RECORD.size :])
            return out
        finally:
            client.close()

    # Every version frame, chunk, node and the dictionary, bit for bit.
    assert stored(other_server.url) == stored(server.url)
    assert run(other_server, prefix, "verify").exit_code == 0
    assert 0 < state_ttl(other_server.url, prefix, "grown") <= 900_000


def commands_during(url: str, work: Any) -> list[str]:
    """The commands the server ran while ``work()`` ran (MONITOR), scripts' own included."""
    client = redis.Redis.from_url(url)
    seen: list[str] = []
    try:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            work()
            client.set("monitor-end-marker", 1)
            for event in monitor.listen():
                command = str(event["command"])
                if "monitor-end-marker" in command:
                    break
                seen.append(command.split(" ", 1)[0].upper())
    finally:
        client.delete("monitor-end-marker")
        client.close()
    return seen


def test_rollback_and_import_apply_the_expiry_in_the_same_write(
    server: EmbeddedRedis, prefix: str, tmp_path: Path
) -> None:
    """No moment when a state that expires has no expiry: no PERSIST, no later touch."""
    seed(server.url, prefix, ("s", {"v": 1}, {"ttl": 900}), ("s", {"v": 2}, {"ttl": 900}))
    rolled = commands_during(server.url, lambda: run(server, prefix, "rollback", "s", "1"))
    assert "EVALSHA" in rolled and "PEXPIRE" in rolled
    assert "PERSIST" not in rolled
    assert 0 < state_ttl(server.url, prefix, "s") <= 900_000
    backup = tmp_path / "ttl.jsonl"
    assert run(server, prefix, "export", "-o", str(backup)).exit_code == 0
    copy = f"{prefix}-copy"
    imported = commands_during(server.url, lambda: run(server, copy, "import", str(backup)))
    assert "PERSIST" not in imported
    # Each script that wrote a version set the expiry in the same call.
    calls = " ".join(imported).split("EVALSHA")
    writes = [call for call in calls if " HSET " in f" {call} "]
    assert len(writes) == 3
    assert all(" PEXPIRE " in f" {call} " for call in writes), writes
    assert 0 < state_ttl(server.url, copy, "s") <= 900_000
