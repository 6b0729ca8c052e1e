"""What resuming from a large journal costs in memory, against what the first run's own pass
over its file costs.

    python -m benchmarks.journal [--rows 300000]

Writes a CSV of ``--rows`` rows and a journal recording every row enrolled (uploads of 1,000
rows, as a finished first run leaves it), then measures with ``tracemalloc`` the peak memory of
(1) the first run's pass: checking the file and choosing the rows to send, and (2) a resume:
opening the journal (the lock, one streamed read) and choosing the rows again, which skips
every one. Each in a process of its own, so neither sees the other's memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

from dialnexa_async._enroll import select_rows
from dialnexa_async._journal import Journal
from dialnexa_async._sources import open_source

CHUNK = 1000


def _write(folder: Path, rows: int) -> tuple[Path, Path]:
    source = folder / "leads.csv"
    journal = folder / "journal.jsonl"
    with source.open("w", encoding="utf-8") as handle:
        handle.write("phone_number,name,plan\n")
        for n in range(rows):
            handle.write(f"+9198{n:08d},Person {n},gold\n")
    with journal.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": "run", "version": 2, "workflow_id": "wf_1"}) + "\n")
        for start in range(0, rows, CHUNK):
            numbers = range(start, min(rows, start + CHUNK))
            chunk = [
                {"phone_number": f"+9198{n:08d}", "name": f"Person {n}", "plan": "gold"}
                for n in numbers
            ]
            upload = f"u{start}"
            sending = {"event": "sending", "upload": upload, "rows": chunk, "settle_after": 0}
            handle.write(json.dumps(sending) + "\n")
            enrolled = {"event": "enrolled", "upload": upload, "leads_enrolled": len(chunk)}
            handle.write(json.dumps(enrolled) + "\n")
    return source, journal


def measure(kind: str, source: Path, journal: Path) -> None:
    """In a child process: the peak traced memory of one pass, in MiB."""
    tracemalloc.start()
    src = open_source(source)
    duplicates = src.check("error")
    opened = Journal(journal, "wf_1", "leads.csv") if kind == "resume" else None
    selection = select_rows(src, duplicates, journal=opened, existing=None)
    if opened is not None:
        assert selection.to_send == 0, selection.to_send
        opened.close()
    _, peak = tracemalloc.get_traced_memory()
    src.close()
    print(f"{peak / 2**20:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, source, journal = options.child
        measure(kind, Path(source), Path(journal))
        return
    with tempfile.TemporaryDirectory() as folder:
        source, journal = _write(Path(folder), options.rows)
        peaks = {}
        for kind in ("first", "resume"):
            done = subprocess.run(  # noqa: S603 - our own module, in a child
                [
                    sys.executable,
                    "-m",
                    "benchmarks.journal",
                    "--child",
                    kind,
                    str(source),
                    str(journal),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks[kind] = float(done.stdout.strip())
        size = journal.stat().st_size / 2**20
    print(f"{options.rows:,} rows, a journal of {size:.1f} MiB recording all of them enrolled")
    print(f"first run's pass (check + select):     peak {peaks['first']:.1f} MiB")
    print(f"resume (journal read + check + select): peak {peaks['resume']:.1f} MiB")
    print(f"resume / first: {peaks['resume'] / peaks['first']:.2f}x")


if __name__ == "__main__":
    main()
