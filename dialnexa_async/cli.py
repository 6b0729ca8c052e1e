"""The ``dialnexa`` command (``pip install 'dialnexa-async[cli]'``), built on click and rich.

Exit codes: 0 success, 1 an API or network error (or an enrolment/removal that did not fully
succeed), 2 a usage error. Errors are one line on stderr: never a traceback, never the key.
Progress bars and colour go to stderr and only on a terminal; data goes to stdout.
"""

from __future__ import annotations

import asyncio
import csv
import enum
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import attrs

try:
    import click
    from rich.console import Console
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table
    from rich.text import Text
except ModuleNotFoundError as exc:  # pragma: no cover - the cli extra installs both
    raise SystemExit(
        "the dialnexa command needs its extra: pip install 'dialnexa-async[cli]'"
    ) from exc

# Public names only, as any program built on the SDK would use them.
from dialnexa_async import (
    AsyncDialNexa,
    DialNexaError,
    EnrollmentError,
    EnrollmentResult,
    Limiter,
    NotFoundError,
    UploadFailure,
    WorkflowAction,
    WorkflowLead,
    WorkflowStatus,
    read_journal,
)

__all__ = ["main"]

T = TypeVar("T")

LEAD_COLUMNS = ("id", "phone_number", "status", "current_node_id", "enrolled_at", "workflow_id")


# -- plumbing -----------------------------------------------------------------------------------


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# Control characters (ESC above all, C1's CSI too) in text a server sent would drive the
# terminal; bidirectional marks and overrides would make it show text in another order.
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
# A table or CSV cell is one line: tabs and line breaks go too.
_CONTROL_IN_CELLS = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _safe(text: object) -> str:
    """``text`` fit to print: control characters shown as ``?``, never obeyed."""
    return _CONTROL.sub("?", str(text))


def _cell(value: object) -> str:
    """A value for a table or CSV cell: one line, with no character a terminal obeys."""
    return _CONTROL_IN_CELLS.sub("?", "" if value is None else str(value))


def _json_line(value: Any, *, indent: int | None = None) -> str:
    """JSON text with every control and bidirectional character escaped (``\\u009b``): still
    the same JSON, never an instruction to a terminal."""
    text = json.dumps(_plain(value), ensure_ascii=False, indent=indent)
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


# A cell a spreadsheet would run as a formula: one that starts with = + - @ (or a tab or CR
# before them), unless it is a plain number such as a phone number (+919800000001, -5).
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?[0-9][0-9 ().-]*$")


def _csv_cell(value: object, *, raw: bool) -> str:
    text = _cell(value)
    if raw or not _FORMULA.match(text) or _NUMBER.match(text):
        return text
    return "'" + text  # shown as text by spreadsheets, not run


def _fail(message: str) -> NoReturn:
    _stderr().print(f"error: {_safe(message)}", markup=False, style="red", soft_wrap=True)
    raise SystemExit(1)


def _quiet_exit() -> NoReturn:
    """The reader of our output went away (``| head -1``): stop without a word, and keep
    Python from complaining when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; API, network and file errors become exit code 1."""
    try:
        return asyncio.run(coro)
    except EnrollmentError as exc:
        _fail(f"{exc}; cause: {exc.__cause__}" if exc.__cause__ else str(exc))
    except DialNexaError as exc:
        _fail(str(exc))
    except UnicodeEncodeError as exc:
        # The output's encoding (LC_ALL=C, PYTHONIOENCODING=latin-1) cannot hold the data.
        _fail(
            f"the output cannot hold this text in the {exc.encoding} encoding: set "
            "PYTHONIOENCODING=utf-8 (or a UTF-8 locale), or write to a file with --output"
        )
    except (ValueError, TypeError) as exc:
        # The SDK refuses bad input before sending: a usage error.
        raise click.UsageError(_safe(exc)) from None
    except BrokenPipeError:
        _quiet_exit()
    except OSError as exc:
        # A file the command was to read or write: say which and why, without a traceback.
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


@asynccontextmanager
async def _client(ctx: click.Context) -> AsyncIterator[AsyncDialNexa]:
    """The session a command uses: in a fleet's budget when ``--redis-url``/``--budget`` say."""
    settings: dict[str, Any] = ctx.find_root().obj
    limiter = _fleet_limiter(settings)
    try:
        try:
            dn = AsyncDialNexa(
                settings["api_key"],
                base_url=settings["base_url"],
                limiter=limiter,
                **settings.get("options", {}),
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        async with dn:
            yield dn
    finally:
        if limiter is not None:
            await limiter.aclose()


def _log_to_stderr(level: int) -> None:
    sdk = logging.getLogger("dialnexa_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    sdk.addHandler(handler)
    sdk.setLevel(level)


def _fleet_limiter(settings: dict[str, Any]) -> Limiter | None:
    url, budget = settings.get("redis_url"), settings.get("budget")
    if url is None and budget is None:
        return None
    if url is None or budget is None:
        raise click.UsageError("--redis-url and --budget go together: a fleet's budget has both")
    try:
        from dialnexa_async.fleet import RedisLimiter  # noqa: PLC0415 - only for fleets
    except ModuleNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        return RedisLimiter(url, name=budget, max_concurrency=settings["budget_concurrency"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _plain(value: Any) -> Any:
    """A model's value as JSON-ready data."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if attrs.has(type(value)):
        return {
            field.name: _plain(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _echo_json(value: Any) -> None:
    click.echo(_json_line(value, indent=2))


def _print_result(ctx: click.Context, call: Callable[[AsyncDialNexa], Awaitable[Any]]) -> None:
    """Open a session, make one call, print what it returns as JSON."""

    async def run() -> None:
        async with _client(ctx) as dn:
            _echo_json(await call(dn))

    _run(run())


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    amount, unit = float(match.group(1)), match.group(2)
    try:
        return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
    except OverflowError:
        raise click.BadParameter(f"{text!r} is longer than a duration can be") from None


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        yield handle


# -- the command --------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-key",
    envvar="DIALNEXA_API_KEY",
    show_envvar=True,
    help="The API key (never printed).",
)
@click.option(
    "--base-url", envvar="DIALNEXA_BASE_URL", show_envvar=True, help="The API's base URL."
)
@click.option(
    "--redis-url",
    envvar="DIALNEXA_REDIS_URL",
    show_envvar=True,
    help="Join a fleet's request budget kept in this Redis (with --budget).",
)
@click.option("--budget", default=None, help="The fleet budget's name (with --redis-url).")
@click.option(
    "--budget-concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight at once across the fleet's budget.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    default=60.0,
    show_default=True,
    help="Seconds one request attempt may take.",
)
@click.option(
    "--max-retries", type=click.IntRange(min=0), default=2, show_default=True, help="Retries."
)
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="Log each retry (-v) or each request attempt too (-vv) on stderr; never the key.",
)
@click.version_option(package_name="dialnexa-async", prog_name="dialnexa")
@click.pass_context
def cli(  # noqa: PLR0917 - click passes every option as an argument
    ctx: click.Context,
    api_key: str | None,
    base_url: str | None,
    redis_url: str | None,
    budget: str | None,
    budget_concurrency: int,
    max_concurrency: int,
    timeout: float,
    max_retries: int,
    verbose: int,
) -> None:
    """Work with DialNexa workflows, leads and campaign leads from a terminal.

    Shell completion: eval "$(_DIALNEXA_COMPLETE=bash_source dialnexa)" (zsh_source, fish_source).
    """
    if verbose:
        _log_to_stderr(logging.DEBUG if verbose > 1 else logging.INFO)
    ctx.obj = {
        "api_key": api_key,
        "base_url": base_url,
        "redis_url": redis_url,
        "budget": budget,
        "budget_concurrency": budget_concurrency,
        "options": {
            "max_concurrency": max_concurrency,
            "timeout": timeout,
            "max_retries": max_retries,
        },
    }


@cli.group()
def workflows() -> None:
    """Create, list and steer workflows."""


@workflows.command("create")
@click.option("--title", required=True, help="1 to 100 characters.")
@click.option("--description", default=None)
@click.option(
    "--status",
    type=click.Choice([s.value for s in WorkflowStatus]),
    default="draft",
    show_default=True,
)
@click.pass_context
def workflows_create(ctx: click.Context, title: str, description: str | None, status: str) -> None:
    """Create a workflow and print it as JSON."""
    _print_result(
        ctx, lambda dn: dn.workflows.create(title=title, description=description, status=status)
    )


@workflows.command("list")
@click.option("--sort-by", default=None, help="e.g. createdAt")
@click.option("--sort-order", type=click.Choice(["ASC", "DESC"]), default=None)
@click.pass_context
def workflows_list(ctx: click.Context, sort_by: str | None, sort_order: str | None) -> None:
    """Print every workflow, one JSON object per line."""

    async def run() -> None:
        async with _client(ctx) as dn:
            async for workflow in dn.workflows.list(sort_by=sort_by, sort_order=sort_order):  # type: ignore[arg-type]
                click.echo(_json_line(workflow))

    _run(run())


@workflows.command("get")
@click.argument("workflow_id")
@click.pass_context
def workflows_get(ctx: click.Context, workflow_id: str) -> None:
    """Print one workflow as JSON."""
    _print_result(ctx, lambda dn: dn.workflows.get(workflow_id))


def _status_command(action: WorkflowAction) -> click.Command:
    @click.command(action.value, help=f"{action.value.capitalize()} a workflow; print it as JSON.")
    @click.argument("workflow_id")
    @click.pass_context
    def command(ctx: click.Context, workflow_id: str) -> None:
        _print_result(ctx, lambda dn: dn.workflows.set_status(workflow_id, action))

    return command


for _action in WorkflowAction:
    workflows.add_command(_status_command(_action))


@cli.group()
def leads() -> None:
    """List, count, enrol and remove a workflow's leads."""


def _lead_row(lead: WorkflowLead) -> dict[str, Any]:
    row = {column: _plain(getattr(lead, column)) for column in LEAD_COLUMNS}
    row["metadata"] = _plain(dict(lead.metadata))
    return row


@leads.command("list")
@click.argument("workflow_id")
@click.option("--status", default=None, help="Only leads in this status.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "jsonl", "csv"]),
    default=None,
    help="Default: a table on a terminal, JSON lines into a pipe or a file.",
)
@click.option("--output", "-o", default=None, help="Write to this file instead of stdout.")
@click.option(
    "--raw-csv",
    is_flag=True,
    help="Write CSV cells that start with = + - @ as they are (by default they are prefixed "
    "with ' so a spreadsheet shows them as text instead of running them as formulas).",
)
@click.pass_context
def leads_list(  # noqa: PLR0917 - click passes every option as an argument
    ctx: click.Context,
    workflow_id: str,
    status: str | None,
    output_format: str | None,
    output: str | None,
    raw_csv: bool,
) -> None:
    """Every lead of a workflow, fetched concurrently, in order.

    jsonl and csv are written as pages arrive; a table (which holds every row until the end) is
    the default only on a terminal. Whatever the format, a lead's text is data: control and
    bidirectional characters are never passed to the terminal, and CSV cells that a
    spreadsheet would run as formulas are neutralised (see --raw-csv).
    """
    console = _stderr()
    if output_format is None:
        output_format = "table" if output is None and sys.stdout.isatty() else "jsonl"

    async def run() -> None:
        with _output(output) as out:
            await write_leads(out)

    async def write_leads(out: IO[str]) -> None:
        async with _client(ctx) as dn:
            writer: Callable[[WorkflowLead], None]
            table: Table | None = None
            if output_format == "jsonl":

                def writer(lead: WorkflowLead) -> None:
                    out.write(_json_line(_lead_row(lead)) + "\n")

            elif output_format == "csv":
                rows = csv.writer(out)
                rows.writerow([*LEAD_COLUMNS, "metadata"])

                def writer(lead: WorkflowLead) -> None:
                    row = _lead_row(lead)
                    cells = [*(row[c] for c in LEAD_COLUMNS), _json_line(row["metadata"])]
                    rows.writerow([_csv_cell(cell, raw=raw_csv) for cell in cells])

            else:
                table = Table(*LEAD_COLUMNS)

                def writer(lead: WorkflowLead) -> None:
                    row = _lead_row(lead)
                    # Text objects: a lead's "[bold]" or "[/]" is data, not rich markup.
                    table.add_row(*(Text(_cell(row[c])) for c in LEAD_COLUMNS))

            with _progress(console) as progress:
                task = progress.add_task("leads", total=None)
                async for page in dn.workflows.leads.list(workflow_id, status=status).pages():
                    progress.update(task, total=page.meta.total, advance=len(page.data))
                    for lead in page.data:
                        writer(lead)
            if table is not None:
                screen = Console(file=out, highlight=False)
                # On a terminal the table fits the screen; in a file nothing is cut short.
                width = None if screen.is_terminal else 1000
                Console(file=out, highlight=False, width=width).print(table)

    _run(run())


def _counts_table(counts: dict[str, int]) -> Table:
    table = Table("status", "leads")
    for status, count in counts.items():
        table.add_row(status, str(count))
    table.add_row("total", str(sum(counts.values())), style="bold")
    return table


@leads.command("count")
@click.argument("workflow_id")
@click.option("--by-status", is_flag=True, help="One count per status.")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Refresh every SECONDS until interrupted.",
)
@click.pass_context
def leads_count(ctx: click.Context, workflow_id: str, by_status: bool, watch: float | None) -> None:
    """The dashboard numbers of a workflow, from limit=1 requests."""

    async def counts(dn: AsyncDialNexa) -> dict[str, int]:
        if by_status:
            return {
                str(s): n for s, n in (await dn.workflows.leads.status_counts(workflow_id)).items()
            }
        return {"all": await dn.workflows.leads.count(workflow_id)}

    def show(values: dict[str, int]) -> None:
        if not by_status:
            click.echo(values["all"])
        elif sys.stdout.isatty():
            Console(highlight=False).print(_counts_table(values))
        else:
            click.echo(json.dumps(values))  # a pipe or a file gets data, not a box table

    async def run() -> None:
        async with _client(ctx) as dn:
            if watch is None:
                show(await counts(dn))
                return
            console = Console(highlight=False)
            if not console.is_terminal:
                while True:  # a pipe gets one line per refresh
                    click.echo(json.dumps(await counts(dn)))
                    await asyncio.sleep(watch)
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    live.update(_counts_table(await counts(dn)), refresh=True)
                    await asyncio.sleep(watch)

    with suppress(KeyboardInterrupt):
        _run(run())


def _failure_reasons(failure: UploadFailure) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = {}
    for error in failure.errors:
        for row in error.rows:
            reasons.setdefault(row, []).append(
                f"{error.code}: {error.message}" if error.code else error.message
            )
    if failure.outcome == "unknown":
        fallback = f"outcome unknown ({failure.error}); check before re-sending"
    elif failure.errors:
        # The server takes an upload whole or not at all.
        fallback = "not enrolled: other rows of its upload were refused; re-send it"
    else:
        fallback = str(failure.error)
    return {row: reasons.get(row, [fallback]) for row in failure.row_numbers}


@leads.command("enroll")
@click.argument("workflow_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--errors-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rows that did not go in, with their reasons, to this CSV.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Record each upload and its outcome in this file; running the same command again "
    "with it skips what was enrolled and holds back what is unknown.",
)
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip rows whose phone number the workflow already holds.",
)
@click.option("--encoding", default=None, help="A CSV file's text encoding (default UTF-8).")
@click.pass_context
def leads_enroll(  # noqa: PLR0917 - click passes every option as an argument
    ctx: click.Context,
    workflow_id: str,
    file: Path,
    chunk_size: int,
    errors_csv: Path | None,
    journal: Path | None,
    skip_existing: bool,
    encoding: str | None,
) -> None:
    """Enrol the leads of a CSV or XLSX file (needs a phone_number column).

    On Ctrl-C it says what was applied and how to resume. Without --journal, the run keeps a
    journal in a temporary directory for that report only.
    """
    console = _stderr()
    scratch = None if journal is not None else Path(tempfile.mkdtemp(prefix="dialnexa-"))
    journal_path = journal if journal is not None else Path(scratch or ".") / "journal.jsonl"

    async def run() -> bool:
        async with _client(ctx) as dn:
            with _progress(console) as progress:
                task = progress.add_task("rows", total=None)

                def on_progress(done: int, total: int | None) -> None:
                    progress.update(task, completed=done, total=total)

                result = await dn.workflows.leads.enroll(
                    workflow_id,
                    file,
                    chunk_size=chunk_size,
                    on_progress=on_progress,
                    journal=journal_path,
                    skip_existing=skip_existing,
                    encoding=encoding,
                )
        problems = [*result.failed, *result.unknown, *result.short]
        _report(console, result)
        if errors_csv is not None and problems:
            _write_errors_csv(errors_csv, problems)
            console.print(f"failed rows written to {errors_csv}", markup=False)
        return not problems

    try:
        ok = _run(_until_sigterm(run()))
    except KeyboardInterrupt:
        _interrupted(console, workflow_id, file, journal_path, explicit=journal is not None)
        raise SystemExit(130) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if not ok:
        raise SystemExit(1)


async def _until_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """``work``, ended by SIGTERM (a deploy, a container stopping) as Ctrl-C ends it: the
    task is cancelled (as asyncio.run does on SIGINT), so uploads in flight are recorded and
    the report says what was applied; then it surfaces as ``KeyboardInterrupt``."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await work
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _report(console: Console, result: EnrollmentResult) -> None:
    failed_rows = sum(len(f.row_numbers) for f in result.failed)
    unknown_rows = sum(len(f.row_numbers) for f in result.unknown)
    console.print(
        f"enrolled {result.leads_enrolled} leads in {len(result.uploads)} upload(s); "
        f"{failed_rows} row(s) failed, {unknown_rows} row(s) with unknown outcome, "
        f"{result.rows_skipped} row(s) skipped ({result.rows_already_enrolled} already enrolled)",
        markup=False,
    )
    problems = [*result.failed, *result.unknown, *result.short]
    if problems:
        table = Table("row", "outcome", "reason")
        for failure in problems:
            for row, reasons in _failure_reasons(failure).items():
                table.add_row(str(row), failure.outcome, Text(_safe("; ".join(reasons))))
        console.print(table)


def _interrupted(
    console: Console, workflow_id: str, file: Path, journal: Path, *, explicit: bool
) -> None:
    """What an interrupted enrolment had done, from its journal, and how to resume it."""
    command = ["dialnexa", "leads", "enroll", workflow_id, str(file)]
    try:
        summary = read_journal(journal)
    except (OSError, ValueError):
        summary = None
    lines = ["interrupted."]
    if summary is not None:
        where = f"the journal {summary.path}" if explicit else "this run"
        lines.append(
            f"{where} records {summary.rows_enrolled} row(s) enrolled, "
            f"{summary.rows_unknown} row(s) sent without a known outcome (they may have been "
            f"applied), {summary.rows_failed} row(s) refused."
        )
    if explicit:
        resume = shlex.join([*command, "--journal", str(journal)])
        lines.append(f"to resume, run the same command again: {resume}")
        lines.append(
            "rows already enrolled are skipped; rows sent without a known outcome are looked "
            "up among the workflow's leads once their requests can no longer be in progress "
            "(the run waits for that, at most one --timeout), and only those it lacks are sent."
        )
    else:
        resume = shlex.join([*command, "--skip-existing"])
        lines.append(
            f"to resume without enrolling anyone twice: {resume} "
            "(it reads the workflow's phone numbers first and sends only the rows it lacks)"
        )
    console.print("\n".join(lines), markup=False)


def _write_errors_csv(path: Path, failures: list[UploadFailure]) -> None:
    columns: list[str] = []
    for failure in failures:
        for row in failure.rows:
            columns.extend(c for c in row if c not in columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "outcome", "reason", *columns])
        for failure in failures:
            reasons = _failure_reasons(failure)
            for number, row in zip(failure.row_numbers, failure.rows, strict=True):
                writer.writerow(
                    [
                        number,
                        failure.outcome,
                        "; ".join(reasons[number]),
                        *(row.get(c, "") for c in columns),
                    ]
                )


@leads.command("remove")
@click.argument("workflow_id")
@click.argument("lead_ids", nargs=-1)
@click.pass_context
def leads_remove(ctx: click.Context, workflow_id: str, lead_ids: tuple[str, ...]) -> None:
    """Remove leads from a workflow, concurrently; one line per id.

    With no LEAD_IDS (or "-"), the ids are read from standard input, one per line: e.g.
    `dialnexa leads list WF --status failed | jq -r .id | dialnexa leads remove WF`.
    """
    if not lead_ids or lead_ids == ("-",):
        if sys.stdin.isatty():
            raise click.UsageError("give LEAD_IDS, or pipe them in, one per line")
        lead_ids = tuple(line.strip() for line in sys.stdin if line.strip())
        if not lead_ids:
            raise click.UsageError("no lead ids on standard input")

    async def remove(dn: AsyncDialNexa, lead_id: str) -> tuple[str, bool, str]:
        try:
            await dn.workflows.leads.remove(workflow_id, lead_id)
        except NotFoundError:
            return lead_id, False, "not found"
        except DialNexaError as exc:
            return lead_id, False, str(exc)
        return lead_id, True, "removed"

    async def run() -> bool:
        async with _client(ctx) as dn:
            outcomes = await asyncio.gather(*(remove(dn, lead_id) for lead_id in lead_ids))
        for lead_id, _, text in outcomes:
            click.echo(f"{lead_id}\t{text}")
        return all(ok for _, ok, _ in outcomes)

    if not _run(run()):
        raise SystemExit(1)


@leads.command("watch")
@click.argument("workflow_id")
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    default=30.0,
    show_default=True,
    help="Seconds between scans.",
)
@click.option("--status", default=None, help="Only leads in this status.")
@click.option("--initial", is_flag=True, help="Print the first scan's leads as added too.")
@click.pass_context
def leads_watch(
    ctx: click.Context, workflow_id: str, every: float, status: str | None, initial: bool
) -> None:
    """Rescan a workflow every --every seconds; print each change as a JSON line (added,
    changed, gone) until interrupted."""

    async def run() -> None:
        async with _client(ctx) as dn:
            watch = dn.workflows.leads.watch(
                workflow_id, every=every, status=status, include_initial=initial
            )
            async with watch:
                async for change in watch:
                    line = {"change": change.kind, "scan": change.scan, "id": change.lead_id}
                    if change.lead is not None:
                        line |= _lead_row(change.lead)
                    click.echo(_json_line(line))

    with suppress(KeyboardInterrupt):
        _run(run())


@leads.command("history")
@click.argument("workflow_id")
@click.argument("lead_id")
@click.pass_context
def leads_history(ctx: click.Context, workflow_id: str, lead_id: str) -> None:
    """A lead and its steps, oldest first, as JSON."""
    _print_result(ctx, lambda dn: dn.workflows.leads.history(workflow_id, lead_id))


@leads.command("stalled")
@click.argument("workflow_id")
@click.option("--older-than", required=True, help="e.g. 90m, 2h, 1d")
@click.pass_context
def leads_stalled(ctx: click.Context, workflow_id: str, older_than: str) -> None:
    """In-progress leads whose current step started longer ago than --older-than (JSON lines)."""
    window = _duration(older_than)

    async def run() -> None:
        async with _client(ctx) as dn:
            async for lead, since in dn.workflows.leads.stalled(workflow_id, older_than=window):
                line = {**_lead_row(lead), "since": _plain(since)}
                click.echo(_json_line(line))

    _run(run())


@cli.group("campaign-leads")
def campaign_leads() -> None:
    """Read campaign leads."""


@campaign_leads.command("get")
@click.argument("lead_id")
@click.pass_context
def campaign_leads_get(ctx: click.Context, lead_id: str) -> None:
    """Print one campaign lead as JSON."""
    _print_result(ctx, lambda dn: dn.campaign_leads.get(lead_id))


@cli.command("fake-server")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--leads", "lead_count", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--api-key", "server_key", default=None, help="The key it accepts (default: a test key)."
)
@click.option(
    "--plain",
    is_flag=True,
    help="Print one line of NAME=value pairs instead of export lines (for scripts).",
)
def fake_server(
    port: int, lead_count: int, latency_ms: float, server_key: str | None, plain: bool
) -> None:
    """Run the shipped fake DialNexa server, to try every command without an account.

    Prints `export` lines that point the command (and any program) at it, then serves until
    interrupted.
    """
    from dialnexa_async.testing import DEFAULT_API_KEY, serve  # noqa: PLC0415 - this command's

    try:
        with suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    port=port,
                    leads=lead_count,
                    latency_ms=latency_ms,
                    api_key=server_key or DEFAULT_API_KEY,
                    export=not plain,
                )
            )
    except OSError as exc:  # the port is taken, or not ours to listen on
        _fail(f"cannot serve on port {port}: {exc.strerror or exc}")


def main(argv: list[str] | None = None) -> None:
    """The ``dialnexa`` console script."""
    cli.main(args=argv, prog_name="dialnexa")
