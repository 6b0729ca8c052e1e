"""Every ``python`` block of the README runs, as written, against the fake server."""

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
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_readme_block_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"block_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    async with FakeDialNexa(leads=10) as fake:
        env = {**os.environ, "DIALNEXA_API_KEY": fake.api_key, "DIALNEXA_BASE_URL": fake.url}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.strip()
