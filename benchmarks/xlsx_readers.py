"""Which library reads a large .xlsx enrolment file best: openpyxl (read-only) or calamine?

    python -m benchmarks.xlsx_readers [--rows 200000]

Writes an .xlsx of ``--rows`` leads (4 columns) once, then reads every row with each library in
a child process of its own, and prints the time and how much the child's resident memory grew.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .pagination import peak_rss_mib, rss_mib


def write_xlsx(path: Path, rows: int) -> None:
    import openpyxl  # noqa: PLC0415

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["phone_number", "customer_name", "city", "plan"])
    for i in range(rows):
        sheet.append([f"+9198{i:08d}", f"Customer {i}", "Mumbai", "gold"])
    book.save(path)


def read_with(library: str, path: Path) -> int:
    count = 0
    if library == "openpyxl":
        import openpyxl  # noqa: PLC0415

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        for _ in book.worksheets[0].iter_rows(values_only=True):
            count += 1
        book.close()
    else:
        from python_calamine import CalamineWorkbook  # noqa: PLC0415

        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        for _ in sheet.iter_rows():
            count += 1
    return count


def child(library: str, path: str) -> None:
    before = rss_mib()
    started = time.perf_counter()
    count = read_with(library, Path(path))
    took = time.perf_counter() - started
    peak = peak_rss_mib()
    print(count, f"{took:.2f}", f"{peak - before:.1f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.xlsx"
        write_xlsx(path, args.rows)
        size = path.stat().st_size / 2**20
        print(f"{args.rows:,} rows, {size:.1f} MiB .xlsx")
        for library in ("openpyxl", "calamine"):
            command = [sys.executable, "-m", "benchmarks.xlsx_readers", "--child", library]
            try:
                out = subprocess.run(  # noqa: S603
                    [*command, str(path)], check=True, capture_output=True, text=True
                ).stdout.split()
            except subprocess.CalledProcessError as exc:
                print(f"  {library:<9} not available: {exc.stderr.strip().splitlines()[-1]}")
                continue
            count, took, grew = out
            print(
                f"  {library:<9} {int(count):>8,} rows in {float(took):5.2f}s, memory +{grew} MiB"
            )


if __name__ == "__main__":
    main()
