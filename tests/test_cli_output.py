"""The command prints data, never markup or terminal control; it exits quietly into a closed
pipe, says so when the output cannot hold the text, and every bad input is one line."""

from __future__ import annotations

import csv
import io
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialnexa_async.testing import FakeDialNexa

from .test_cli import COMMAND, KEY, ServerThread, _subprocess_env, fake_server_process, run

HOSTILE_STATUS = "[bold]loud[/bold] \x1b[31mred\x1b[0m \x9b2J \u202eevil"
FORMULA = '=HYPERLINK("http://evil.example","click")'
TERMINAL_CONTROL = ["\x1b", "\x9b", "\u202e"]


@pytest.fixture
def hostile_server() -> Iterator[FakeDialNexa]:
    fake = FakeDialNexa(leads=0, api_key=KEY)
    with ServerThread(fake) as running:
        workflow = running.store.create_workflow("hostile")
        running.store.add_lead(
            workflow, "+919800000001", status=HOSTILE_STATUS, current_node_id="[/]"
        )
        running.store.add_lead(workflow, "+919800000002", current_node_id=FORMULA)
        running.store.add_lead(workflow, "+919800000003", current_node_id="@SUM(A1:A9)")
        running.store.add_lead(workflow, "+919800000004", current_node_id="名前")
        running.workflow_id = workflow.id
        yield running


@pytest.mark.parametrize("output_format", ["table", "jsonl", "csv"])
def test_lead_text_never_drives_the_terminal(
    hostile_server: FakeDialNexa, output_format: str, tmp_path: Path
) -> None:
    target = tmp_path / f"leads.{output_format}"
    args = ["leads", "list", hostile_server.workflow_id or "", "--format", output_format]
    result = run(hostile_server, *args, "--output", str(target))
    assert result.exit_code == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    for control in TERMINAL_CONTROL:
        assert control not in text
    if output_format == "table":
        assert "[/]" in text  # data, shown as it is, not taken for markup
        assert "[bold]loud[/bold]" in text
    if output_format == "jsonl":
        first = json.loads(text.splitlines()[0])
        assert first["status"] == HOSTILE_STATUS  # escaped, and the same JSON value


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(
    hostile_server: FakeDialNexa, tmp_path: Path
) -> None:
    workflow = hostile_server.workflow_id or ""
    safe, raw = tmp_path / "safe.csv", tmp_path / "raw.csv"
    assert run(hostile_server, "leads", "list", workflow, "--format", "csv", "-o", str(safe))
    run(hostile_server, "leads", "list", workflow, "--format", "csv", "-o", str(raw), "--raw-csv")
    rows = list(csv.DictReader(io.StringIO(safe.read_text(encoding="utf-8"))))
    nodes = [row["current_node_id"] for row in rows]
    assert f"'{FORMULA}" in nodes
    assert "'@SUM(A1:A9)" in nodes
    assert rows[0]["phone_number"] == "+919800000001"  # numbers stay numbers
    raw_rows = list(csv.DictReader(io.StringIO(raw.read_text(encoding="utf-8"))))
    assert FORMULA in [row["current_node_id"] for row in raw_rows]


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    with fake_server_process(3000, 0) as (env, workflow):
        with subprocess.Popen(
            [*COMMAND, "leads", "list", workflow],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        ) as listing:
            assert listing.stdout is not None
            assert listing.stdout.readline()  # as `| head -1` reads one line
            listing.stdout.close()
            _, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    assert err.strip() == b""  # no "Broken pipe", no "Unclosed client session"


def test_output_that_cannot_hold_the_text_is_a_clear_error(hostile_server: FakeDialNexa) -> None:
    env = _subprocess_env(
        DIALNEXA_API_KEY=KEY,
        DIALNEXA_BASE_URL=hostile_server.url,
        PYTHONIOENCODING="latin-1",
    )
    done = subprocess.run(
        [*COMMAND, "leads", "list", hostile_server.workflow_id or "", "--format", "jsonl"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot hold this text" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_older_than_beyond_the_calendar_is_one_line(hostile_server: FakeDialNexa) -> None:
    result = run(
        hostile_server,
        "leads",
        "stalled",
        hostile_server.workflow_id or "",
        "--older-than",
        "2000000d",
    )
    assert result.exit_code == 2  # a usage error, as every refused argument
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "older_than reaches before year 1" in errors[0]


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*COMMAND, "fake-server", "--port", str(port), "--plain"],
            capture_output=True,
            text=True,
            env=_subprocess_env(),
            check=False,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot serve on port {port}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_sigterm_during_an_enrolment_reports_and_leaves_no_journal(tmp_path: Path) -> None:
    rows = "\n".join(["phone_number", *(f"+9198{i:08d}" for i in range(3000))])
    source = tmp_path / "leads.csv"
    source.write_text(rows + "\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with fake_server_process(1, 150) as (server_env, workflow):
        env = {**server_env, "TMPDIR": str(scratch)}
        command = [*COMMAND, "--timeout", "2", "leads", "enroll", workflow, str(source)]
        with subprocess.Popen(
            [*command, "--chunk-size", "100"], stderr=subprocess.PIPE, text=True, env=env
        ) as enrolling:
            for _ in range(600):  # until the scratch journal shows an upload was recorded
                journals = list(scratch.glob("dialnexa-*/journal.jsonl"))
                if journals and '"enrolled"' in journals[0].read_text():
                    break
                time.sleep(0.05)
            enrolling.send_signal(signal.SIGTERM)
            _, err = enrolling.communicate(timeout=60)
    assert enrolling.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert list(scratch.iterdir()) == []  # no journal of names and numbers left behind
