import pytest

from dialnexa_async.testing import demo


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
