import importlib.util
import sys
from pathlib import Path

import pytest

# The demo is an example, not part of the package: loaded from examples/ as `make demo` runs it.
_DEMO = Path(__file__).parent.parent / "examples" / "demo.py"
_spec = importlib.util.spec_from_file_location("dialnexa_demo", _DEMO)
assert _spec is not None
assert _spec.loader is not None
demo = importlib.util.module_from_spec(_spec)
sys.modules["dialnexa_demo"] = demo
_spec.loader.exec_module(demo)


async def test_make_demo_runs_the_whole_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    await demo.main()
    out = capsys.readouterr().out
    assert "created workflow" in out
    assert f"enrolled {demo.LEADS} leads from leads.csv in 3 concurrent uploads" in out
    assert "activated" in out
    assert f"scanned {demo.LEADS} leads" in out
    assert f"in_progress  {demo.LEADS}" in out  # activation started every enrolled lead
    assert "dashboard tile" in out
    assert "removed lead" in out
    assert "campaign lead" in out
