"""Every ```python block of README.md and docs/**/*.md runs, so none of them rots.

The blocks of one file run in order, in one namespace and on one event loop,
the way a reader would paste them: a later block may use what an earlier one
defined, and a block may ``await`` at top level. Each file gets its own
throwaway redis-server: ``REDIS_URL`` names it, and ``redis://localhost:6379``
written in a block is pointed at it, so a block never reaches a server the
test did not start. A block that cannot run here (a server on another host,
a cluster, a program that serves forever) is skipped only when the line
before its fence is the marker ``<!-- no-run -->``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recostate.testing import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "<!-- no-run -->"
_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^`]*$")
_LOCAL_SERVER = re.compile(r"redis://(localhost|127\.0\.0\.1):6379")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the first line of code
    source: str
    runs: bool


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [path for path in files if path.is_file()]


def code_blocks(path: Path) -> list[Block]:
    """Return the python blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opened = _OPEN.match(lines[index])
        if not opened:
            index += 1
            continue
        indent, fence = opened["indent"], opened["fence"]
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path}:{index + 1}: code fence never closed")
        if opened["lang"].lower() in ("python", "py"):
            previous = next(
                (lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), ""
            )
            body = [line[len(indent) :] if line.startswith(indent) else line for line in lines[start:end]]
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n", previous != NO_RUN))
        index = end + 1
    return blocks


def _files_with_blocks() -> list[Path]:
    return [path for path in markdown_files() if code_blocks(path)]


@pytest.fixture
def docs_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


def _where(block: Block) -> str:
    path = block.path.resolve()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"{shown}:{block.line}"


class BlockFailed(Exception):
    """A block raised, or would reach a server the test did not start."""


def _prepare(block: Block, url: str) -> str:
    base = url.rsplit("/", 1)[0]
    source = _LOCAL_SERVER.sub(base, block.source)
    if "6379" in source or re.search(r"RedisStatePersistence\(\s*\)", source):
        raise BlockFailed(
            f"{_where(block)}: this block would talk to a Redis server the test did not "
            f"start (port 6379); read REDIS_URL, or mark it {NO_RUN}"
        )
    return source


def run_file(path: Path, url: str) -> int:
    """Run the blocks of ``path`` in order, in one namespace and event loop; return how many."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    ran = 0
    try:
        for block in code_blocks(path):
            if not block.runs:
                continue
            source = _prepare(block, url)
            try:
                # dont_inherit: a block runs as pasted, without this module's
                # `from __future__ import annotations` (which TypedDict states break on).
                code = compile(
                    source,
                    _where(block),
                    "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                    dont_inherit=True,
                )
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(code, namespace))
                else:
                    exec(code, namespace)
            except Exception as exc:
                detail = "".join(traceback.format_exception(exc)[-6:])
                raise BlockFailed(f"the block at {_where(block)} failed:\n{detail}") from exc
            ran += 1
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return ran


@pytest.mark.parametrize(
    "path", _files_with_blocks(), ids=lambda path: str(path.relative_to(ROOT))
)
def test_python_blocks_run(path: Path, docs_server: EmbeddedRedis, tmp_path: Path) -> None:
    # A process per file: what a block sets up globally (logging, telemetry
    # providers, environment) stays out of the rest of the suite.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(path), docs_server.url],
        cwd=tmp_path,
        env={**environ, "REDIS_URL": docs_server.url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,
    )
    if result.returncode != 0:
        pytest.fail(result.stderr[-4000:] or result.stdout[-4000:], pytrace=False)


def test_the_readme_has_blocks_and_the_parser_finds_them(tmp_path: Path) -> None:
    assert any(block.runs for block in code_blocks(ROOT / "README.md"))
    sample = tmp_path / "sample.md"
    sample.write_text(
        "text\n\n```python\nx = 1\n```\n\n<!-- no-run -->\n```python\nserve_forever()\n```\n"
        "\n1. a list\n\n   ```py\n   y = x + 1\n   ```\n\n```bash\nls\n```\n"
    )
    blocks = code_blocks(sample)
    assert [(b.line, b.source, b.runs) for b in blocks] == [
        (4, "x = 1\n", True),
        (9, "serve_forever()\n", False),
        (15, "y = x + 1\n", True),
    ]


if __name__ == "__main__":
    # python tests/test_docs_blocks.py FILE.md REDIS_URL: run one file's blocks.
    try:
        run_file(Path(sys.argv[1]), sys.argv[2])
    except BlockFailed as failure:
        print(failure, file=sys.stderr)
        sys.exit(1)
