"""Every ``python`` block of the README runs, as written, against the fake server.

A block that defines ``test_`` functions is run by pytest (as a user would); any other block is
run as a script, with ``DIALNEXA_API_KEY`` and ``DIALNEXA_BASE_URL`` pointing at a fake server.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from dialnexa_async.testing import FakeDialNexa

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_readme_block_runs(index: int, tmp_path: Path) -> None:
    block = BLOCKS[index]
    is_test = "def test_" in block
    script = tmp_path / (f"test_block_{index}.py" if is_test else f"block_{index}.py")
    script.write_text(block, encoding="utf-8")
    command = [sys.executable, "-W", "error"]
    if is_test:
        # As in a user's pytest configuration (pytest-asyncio asks for the loop scope).
        command += ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
        command += ["-o", "asyncio_default_fixture_loop_scope=function"]
    else:
        command.append(str(script))
    async with FakeDialNexa(leads=10) as fake:
        env = {**os.environ, "DIALNEXA_API_KEY": fake.api_key, "DIALNEXA_BASE_URL": fake.url}
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    assert process.returncode == 0, out.decode() + err.decode()
    if is_test:
        assert re.search(rb"\d+ passed", out), out.decode()
        assert b"failed" not in out
    else:
        assert out.strip()
