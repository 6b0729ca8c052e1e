"""The ``dialnexa`` command against the fake server (running in a thread of its own)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from dialnexa_async.cli import cli
from dialnexa_async.testing import FakeDialNexa

KEY = "dnx_cli_secret_7f3a9c"


class ServerThread:
    """A FakeDialNexa on an event loop of its own, so that synchronous CLI calls can use it."""

    def __init__(self, fake: FakeDialNexa) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeDialNexa:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def server() -> Iterator[FakeDialNexa]:
    with ServerThread(FakeDialNexa(leads=230, api_key=KEY)) as fake:
        yield fake


def run(server: FakeDialNexa, *args: str, key: str = KEY) -> Result:
    env = {"DIALNEXA_API_KEY": key, "DIALNEXA_BASE_URL": server.url}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert key not in result.output
    assert key not in result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_workflows_create_prints_json(server: FakeDialNexa) -> None:
    result = run(server, "workflows", "create", "--title", "From the CLI", "--description", "d")
    assert result.exit_code == 0, result.stderr
    workflow = json.loads(result.stdout)
    assert workflow["title"] == "From the CLI"
    assert workflow["status"] == "draft"
    assert workflow["id"] in server.store.workflows


def test_leads_list_jsonl_and_csv_parse_back(server: FakeDialNexa, tmp_path: Path) -> None:
    wf = server.workflow_id or ""
    jsonl = run(server, "leads", "list", wf, "--format", "jsonl")
    assert jsonl.exit_code == 0, jsonl.stderr
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    expected = [lead["id"] for lead in server.store.workflows[wf].leads]
    assert [line["id"] for line in lines] == expected
    assert lines[0]["metadata"] == {"customer_name": "Customer 0"}
    out = tmp_path / "leads.csv"
    written = run(
        server,
        "leads",
        "list",
        wf,
        "--format",
        "csv",
        "--output",
        str(out),
        "--status",
        "completed",
    )
    assert written.exit_code == 0, written.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == [
        "id",
        "phone_number",
        "status",
        "current_node_id",
        "enrolled_at",
        "workflow_id",
        "metadata",
    ]
    assert len(rows) == 46  # every fifth generated lead is completed
    assert {row["status"] for row in rows} == {"completed"}
    table = run(server, "leads", "list", wf)
    assert table.exit_code == 0
    assert expected[-1] in table.stdout  # nothing cut short when not on a terminal
    assert "\x1b[" not in table.stdout + table.stderr  # no colour or bar codes in a pipe


def test_leads_count(server: FakeDialNexa) -> None:
    wf = server.workflow_id or ""
    total = run(server, "leads", "count", wf)
    assert total.stdout.strip() == "230"
    by_status = run(server, "leads", "count", wf, "--by-status")
    assert by_status.exit_code == 0
    counts = json.loads(by_status.stdout)  # into a pipe: JSON, not a box table
    assert counts["in_progress"] == 92  # 2 of every 5 generated leads are in progress


def test_enroll_reports_failed_rows_and_writes_them(server: FakeDialNexa, tmp_path: Path) -> None:
    workflow = server.store.create_workflow("enrol")
    source = tmp_path / "leads.csv"
    source.write_text(
        "phone_number,name\n+919800000001,A\n12,B\n+919800000003,C\n+919800000004,D\n"
    )
    errors = tmp_path / "errors.csv"
    result = run(
        server,
        "leads",
        "enroll",
        workflow.id,
        str(source),
        "--chunk-size",
        "2",
        "--errors-csv",
        str(errors),
    )
    assert result.exit_code == 1
    assert "enrolled 2 leads in 1 upload(s); 2 row(s) failed" in result.stderr
    rows = list(csv.DictReader(io.StringIO(errors.read_text(encoding="utf-8"))))
    assert [(row["row"], row["phone_number"], row["name"]) for row in rows] == [
        ("2", "+919800000001", "A"),
        ("3", "12", "B"),
    ]
    assert rows[1]["reason"] == "invalid_phone_number: not a valid phone number"
    assert "re-send" in rows[0]["reason"]
    ok = run(server, "leads", "enroll", workflow.id, str(source.with_name("good.csv")))
    assert ok.exit_code == 2  # no such file: a usage error
    (tmp_path / "good.csv").write_text("phone_number\n+919800000009\n")
    ok = run(server, "leads", "enroll", workflow.id, str(tmp_path / "good.csv"))
    assert ok.exit_code == 0, ok.stderr
    assert "enrolled 1 leads in 1 upload(s); 0 row(s) failed" in ok.stderr


def test_remove_many_prints_a_line_per_id(server: FakeDialNexa) -> None:
    wf = server.workflow_id or ""
    leads = list(server.store.workflows[wf].leads)
    pending, completed = leads[0]["id"], leads[3]["id"]
    result = run(server, "leads", "remove", wf, pending, completed, "wlead_missing")
    assert result.exit_code == 1
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert lines[pending] == "removed"
    assert lines["wlead_missing"] == "not found"
    assert lines[completed].startswith("409 Lead is already completed")
    assert run(server, "leads", "remove", wf, leads[1]["id"]).exit_code == 0


def test_lifecycle_commands(server: FakeDialNexa) -> None:
    workflow = server.store.create_workflow("life")
    assert (
        json.loads(run(server, "workflows", "activate", workflow.id).stdout)["status"] == "active"
    )
    assert json.loads(run(server, "workflows", "pause", workflow.id).stdout)["status"] == "paused"
    conflict = run(server, "workflows", "pause", workflow.id)
    assert conflict.exit_code == 1
    assert conflict.stderr.startswith("error: 409")
    assert json.loads(run(server, "workflows", "get", workflow.id).stdout)["title"] == "life"
    listed = [
        json.loads(line)["id"] for line in run(server, "workflows", "list").stdout.splitlines()
    ]
    assert workflow.id in listed
    wf = server.workflow_id or ""
    lead_id = list(server.store.workflows[wf].leads)[1]["id"]
    history = json.loads(run(server, "leads", "history", wf, lead_id).stdout)
    assert history["lead"]["id"] == lead_id
    assert history["steps"][0]["node_id"] == "node_call_1"
    stalled = run(server, "leads", "stalled", wf, "--older-than", "2h")
    assert stalled.exit_code == 0
    found = [json.loads(line) for line in stalled.stdout.splitlines()]
    assert len(found) == 92  # every in-progress generated lead started in 2024
    assert all(line["status"] == "in_progress" and line["since"] for line in found)
    assert run(server, "leads", "stalled", wf, "--older-than", "soon").exit_code == 2


def test_campaign_lead_get(server: FakeDialNexa) -> None:
    result = run(server, "campaign-leads", "get", server.campaign_lead_id)
    assert json.loads(result.stdout)["metadata"]["product"] == "home_loan"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["leads", "list", "wf_missing"], 1, "error: 404 Workflow not found"),
        (["campaign-leads", "get", "lead_missing"], 1, "error: 404 Campaign lead not found"),
        (["leads", "list", "wf_1", "--format", "xml"], 2, "Invalid value for '--format'"),
        (["leads", "frobnicate"], 2, "No such command"),
        (["workflows", "create", "--title", "x" * 101], 2, "title must be at most 100"),
        (["leads", "remove", "wf_1"], 2, "no lead ids on standard input"),
    ],
)
def test_exit_codes(server: FakeDialNexa, args: list[str], code: int, message: str) -> None:
    result = run(server, *args)
    assert result.exit_code == code
    assert message in result.stderr


def test_a_bad_key_is_an_api_error_that_does_not_show_the_key(server: FakeDialNexa) -> None:
    result = run(server, "leads", "count", server.workflow_id or "", key="dnx_wrong_but_secret_123")
    assert result.exit_code == 1
    assert "401 API key is missing or invalid" in result.stderr


def test_no_key_at_all_is_a_usage_error(server: FakeDialNexa) -> None:
    result = CliRunner().invoke(
        cli,
        ["leads", "count", "wf_1"],
        env={"DIALNEXA_API_KEY": None, "DIALNEXA_BASE_URL": server.url},
    )
    assert result.exit_code == 2
    assert "DIALNEXA_API_KEY" in result.stderr


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALNEXA_")}
    env.update(extra)
    return env


COMMAND = [sys.executable, "-m", "dialnexa_async"]


@contextmanager
def fake_server_process(leads: int, latency_ms: int) -> Iterator[tuple[dict[str, str], str]]:
    """``dialnexa fake-server`` in a process of its own: the environment to reach it and its
    workflow id; stopped with SIGINT, as a person would, and checked to exit cleanly."""
    with subprocess.Popen(
        [
            *COMMAND,
            "fake-server",
            "--leads",
            str(leads),
            "--latency-ms",
            str(latency_ms),
            "--plain",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_subprocess_env(),
    ) as server:
        try:
            assert server.stdout is not None
            fields = dict(part.split("=", 1) for part in server.stdout.readline().split())
            env = _subprocess_env(
                DIALNEXA_API_KEY=fields["DIALNEXA_API_KEY"],
                DIALNEXA_BASE_URL=fields["DIALNEXA_BASE_URL"],
            )
            yield env, fields["WORKFLOW_ID"]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    assert server.returncode == 0


def json_lines_until_interrupted(command: list[str], env: dict[str, str], count: int) -> list[Any]:
    """The first ``count`` JSON lines a long-running command prints; then Ctrl-C, after which
    it must exit 0 without a traceback."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdout is not None
        lines = [json.loads(process.stdout.readline()) for _ in range(count)]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return lines


def test_end_to_end_fake_server_command_and_the_cli_in_subprocesses() -> None:
    with fake_server_process(120, 1) as (env, wf):
        listed = subprocess.run(
            [*COMMAND, "leads", "list", wf, "--format", "jsonl"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert len(listed.stdout.splitlines()) == 120
        first, second = json_lines_until_interrupted(
            [*COMMAND, "leads", "count", wf, "--by-status", "--watch", "0.2"], env, 2
        )
        assert first == second
        assert sum(first.values()) == 120


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dialnexa_async", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "campaign-leads" in result.stdout
    assert "fake-server" in result.stdout


# -- hostile input and output paths ------------------------------------------------------------


def test_hostile_input_and_output_paths_are_one_line_errors(
    server: FakeDialNexa, tmp_path: Path
) -> None:
    from .test_workbook import FAR_CELL, sheet, workbook

    far = tmp_path / "far.xlsx"
    far.write_bytes(workbook(sheet(FAR_CELL)))
    enrolled = run(server, "leads", "enroll", server.workflow_id or "", str(far))
    assert enrolled.exit_code == 1
    assert "far.xlsx" in enrolled.stderr
    assert "column 16384" in enrolled.stderr

    unwritable = run(
        server, "leads", "list", server.workflow_id or "", "-o", str(tmp_path / "no" / "x.csv")
    )
    assert unwritable.exit_code == 1
    assert "error:" in unwritable.stderr

    huge = run(server, "leads", "stalled", "wf_1", "--older-than", "99999999999999999h")
    assert huge.exit_code == 2
    assert "duration" in huge.stderr

    missing = run(server, "leads", "count", "wf_nope", "--by-status")
    assert missing.exit_code == 1
    assert "404" in missing.stderr


def test_terminal_escapes_in_server_text_are_not_printed(server: FakeDialNexa) -> None:
    def painted(request: web.Request) -> web.Response:
        return web.json_response({"message": "\x1b]0;pwned\x07\x1b[31mred"}, status=404)

    server.interceptor = painted
    result = run(server, "campaign-leads", "get", "x")
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "red" in result.stderr


def test_ctrl_c_during_an_enrolment_says_what_was_applied_and_how_to_resume(
    tmp_path: Path,
) -> None:
    rows = "\n".join(["phone_number", *(f"+9198{i:08d}" for i in range(3000))])
    source = tmp_path / "leads.csv"
    source.write_text(rows + "\n")
    journal = tmp_path / "enrol.jsonl"
    command = COMMAND
    with fake_server_process(1, 150) as (env, wf):
        # One attempt may take 2 s: the resume waits at most that long to settle.
        enroll = [*command, "--timeout", "2", "leads", "enroll", wf, str(source)]
        enroll += ["--chunk-size", "100", "--journal", str(journal)]
        with subprocess.Popen(enroll, stderr=subprocess.PIPE, text=True, env=env) as first:
            for _ in range(600):  # until an upload has been recorded as enrolled
                if journal.exists() and '"enrolled"' in journal.read_text():
                    break
                time.sleep(0.05)
            first.send_signal(signal.SIGINT)
            _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err
        assert "Traceback" not in err
        assert "interrupted" in err
        assert "row(s) enrolled" in err
        assert "to resume, run the same command again" in err
        second = subprocess.run(enroll, capture_output=True, text=True, env=env, check=False)
        assert second.returncode == 0, second.stderr
        assert "already enrolled" in second.stderr
        counted = subprocess.run(
            [*command, "leads", "count", wf],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert counted.stdout.strip() == "3001"  # the seeded lead, and everyone once


# -- pipes, global options, watching, removing from stdin ---------------------------------------


def test_list_into_a_pipe_is_json_lines_and_remove_reads_stdin(server: FakeDialNexa) -> None:
    listed = run(server, "leads", "list", server.workflow_id or "", "--status", "failed")
    assert listed.exit_code == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows
    assert all(row["status"] == "failed" for row in rows)
    env = {"DIALNEXA_API_KEY": KEY, "DIALNEXA_BASE_URL": server.url}
    ids = "\n".join(row["id"] for row in rows[:3]) + "\n"
    removed = CliRunner().invoke(
        cli, ["leads", "remove", server.workflow_id or ""], input=ids, env=env
    )
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.count("\tremoved") == 3


def test_global_options_reach_the_session(server: FakeDialNexa) -> None:
    result = run(
        server,
        "--max-concurrency",
        "2",
        "--timeout",
        "5",
        "--max-retries",
        "0",
        "-vv",
        "leads",
        "list",
        server.workflow_id or "",
        "--format",
        "jsonl",
    )
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 230
    assert server.stats.max_in_flight <= 2
    assert "GET /workflows/" in result.stderr  # -vv logs each attempt
    assert KEY not in result.stderr


def test_a_connection_error_says_why() -> None:
    env = {"DIALNEXA_API_KEY": KEY, "DIALNEXA_BASE_URL": "http://127.0.0.1:9/v1"}
    result = CliRunner().invoke(cli, ["--max-retries", "0", "campaign-leads", "get", "x"], env=env)
    assert result.exit_code == 1
    assert "connection refused" in result.stderr


def test_fake_server_prints_export_lines() -> None:
    with subprocess.Popen(
        [*COMMAND, "fake-server", "--leads", "3"],
        stdout=subprocess.PIPE,
        text=True,
        env=_subprocess_env(),
    ) as server:
        try:
            assert server.stdout is not None
            lines = [server.stdout.readline().strip() for _ in range(3)]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    assert [line.split("=")[0] for line in lines] == [
        "export DIALNEXA_BASE_URL",
        "export DIALNEXA_API_KEY",
        "export WORKFLOW_ID",
    ]


def test_leads_watch_prints_changes_as_json_lines() -> None:
    with fake_server_process(25, 1) as (env, wf):
        lines = json_lines_until_interrupted(
            [*COMMAND, "leads", "watch", wf, "--every", "0.2", "--initial"], env, 25
        )
    assert {line["change"] for line in lines} == {"added"}
    assert len({line["id"] for line in lines}) == 25
