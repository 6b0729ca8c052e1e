"""Enrolment payloads, without I/O to the server: read a source, check it, cut it into uploads.

A source is a path to a ``.csv``/``.xlsx``/``.xls`` file, ``bytes``, a binary file object, or an
iterable of rows (mappings, attrs instances or dataclasses). Every source is checked in full
before anything is sent (a :class:`~dialnexa_async.errors.SourceValidationError` lists every
problem with its row numbers, or names the file and why it cannot be read). A CSV file on disk
is read twice, row by row, so it is never held in memory whole; an .xlsx is first checked
against its :class:`~dialnexa_async._workbook.WorkbookLimits` (see ``_workbook``), then parsed
once, while it is checked, into a temporary CSV on disk that the uploads are then cut from. An
.xls is sent as it is (there is no reader for it here). Row numbers are as a spreadsheet shows
them: the header is row 1.

A source of at most ``chunk_size`` rows that came as a UTF-8 CSV or an .xlsx is sent as that
very file, unchanged, when its rows are numbered 2, 3, 4, ... without gaps (a blank line would
leave the server's numbering and ours to disagree); anything else is cut into CSV uploads of
``chunk_size`` rows (the ``csv`` module, every value as text), each remembering which of the
caller's rows it carries.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from ._workbook import WorkbookLimits, check_workbook
from .errors import SourceValidationError
from .models import RowError

__all__ = [
    "CSV_TYPE",
    "PHONE_COLUMN",
    "XLSX_TYPE",
    "XLS_TYPE",
    "Chunk",
    "DuplicatePolicy",
    "Source",
    "build_csv",
    "cell_text",
    "map_row_errors",
    "open_source",
    "phone_identity",
    "plan_chunks",
]

PHONE_COLUMN = "phone_number"
CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLS_TYPE = "application/vnd.ms-excel"
_SUFFIX_TYPES = {".csv": CSV_TYPE, ".xlsx": XLSX_TYPE, ".xls": XLS_TYPE}
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"

DuplicatePolicy = Literal["error", "skip", "keep"]

Row = dict[str, str]


@attrs.frozen
class Chunk:
    """One upload: its rows, their numbers in the caller's source, and the bytes to send."""

    rows: list[Row]
    row_numbers: list[int]
    filename: str
    content_type: str
    data: bytes


def build_csv(header: list[str], rows: Iterable[Mapping[str, str]]) -> bytes:
    """CSV text (UTF-8) with ``header`` and one record per row; quotes/newlines survive."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return buffer.getvalue().encode("utf-8")


def map_row_errors(errors: Iterable[RowError], row_numbers: list[int]) -> list[RowError]:
    """An upload's row errors with its row numbers (header = 1) turned into the caller's."""
    mapped = []
    for error in errors:
        rows, outside = [], []
        for row in error.rows:
            index = row - 2
            if 0 <= index < len(row_numbers):
                rows.append(row_numbers[index])
            else:
                outside.append(row)
        mapped.append(attrs.evolve(error, rows=rows, unmapped_rows=outside))
    return mapped


# What a person writes between the digits of a phone number, and no dialler keeps.
_SEPARATORS = str.maketrans("", "", " \t\u00a0-.()/")


def phone_identity(phone: str) -> str:
    """A phone number as the SDK compares it, to tell one person from another: trimmed, and
    without the spaces, hyphens, dots, slashes and parentheses people write between digits
    (``+91 (980) 000-0001`` and ``+919800000001`` are one person). Nothing else changes: a
    leading ``+`` or ``0`` stays, so numbers that differ in their digits stay apart."""
    return phone.strip().translate(_SEPARATORS)


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # Spreadsheets store phone numbers as floats: 9876543210.0 means "9876543210".
        return str(int(value))
    return str(value)


def _row_mapping(row: object, index: int) -> Mapping[str, object]:
    if isinstance(row, Mapping):
        return row
    if attrs.has(type(row)):
        return attrs.asdict(row, recurse=False)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    raise TypeError(
        f"source row {index} must be a mapping, an attrs instance or a dataclass, "
        f"got {type(row).__name__}"
    )


class Source:
    """A checked enrolment source that can be read (again) as header + numbered rows."""

    def __init__(
        self,
        *,
        kind: Literal["csv", "xlsx", "xls", "rows"],
        filename: str,
        path: Path | None = None,
        data: bytes | None = None,
        rows: list[Row] | None = None,
        header: list[str] | None = None,
        encoding: str | None = None,
        limits: WorkbookLimits | None = None,
    ) -> None:
        self.kind = kind
        self.filename = filename
        self._path = path
        self._data = data
        self._rows = rows
        self._encoding = encoding or "utf-8-sig"
        self._limits = limits or WorkbookLimits()
        self.header: list[str] = header or []
        self.total_rows = 0
        # Whether the rows are numbered 2, 3, 4, ... with no blank record between them.
        self.dense = True
        # An .xlsx is read once, while it is checked, into this CSV on disk; later passes
        # stream that instead of parsing the workbook again.
        self._spool: IO[str] | None = None

    def close(self) -> None:
        """Delete the on-disk copy of an .xlsx source, if one was made."""
        if self._spool is not None:
            spool, self._spool = self._spool, None
            spool.close()

    def digest(self) -> str:
        """A SHA-256 of what the source holds (its bytes, or its rows), to name the job of
        enrolling it: the same file or rows give the same digest on every machine."""
        hasher = hashlib.sha256()
        if self._path is not None:
            with self._path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(block)
        elif self._data is not None:
            hasher.update(self._data)
        else:
            hasher.update(json.dumps(self.header).encode())
            for row in self._rows or []:
                hasher.update(json.dumps(row, sort_keys=True).encode())
        return hasher.hexdigest()

    @property
    def content_type(self) -> str:
        return {"csv": CSV_TYPE, "xlsx": XLSX_TYPE, "xls": XLS_TYPE, "rows": CSV_TYPE}[self.kind]

    @property
    def sendable_as_is(self) -> bool:
        """Whether the file itself can be uploaded: the server reads it as we number it."""
        if self.kind == "xls":
            return True
        if self.kind == "rows" or not self.dense:
            return False
        return self.kind == "xlsx" or self._encoding.replace("_", "-").lower() in (
            "utf-8",
            "utf-8-sig",
            "utf8",
        )

    def raw_bytes(self) -> bytes:
        """The source file's bytes exactly as given (files only)."""
        if self._data is not None:
            return self._data
        if self._path is None:  # pragma: no cover - rows sources never ask
            raise RuntimeError("no file behind this source")
        return self._path.read_bytes()

    # -- reading --------------------------------------------------------------------------

    def _refuse(self, reason: str) -> SourceValidationError:
        return SourceValidationError(
            f"{self.filename!r} cannot be read: {reason}", source=self.filename
        )

    def _records(self) -> Iterator[list[str]]:
        """Header then records, as lists of text; a file that cannot be read is refused."""
        try:
            if self.kind == "csv":
                yield from self._csv_records()
            elif self.kind == "xlsx":
                yield from self._xlsx_spooled()
            else:  # pragma: no cover - rows are read by numbered_rows directly
                raise RuntimeError(f"cannot read rows of a {self.kind} source")
        except UnicodeDecodeError as exc:
            named = "UTF-8" if self._encoding == "utf-8-sig" else self._encoding
            raise self._refuse(
                f"it is not {named} text (byte {exc.start}); pass encoding=... "
                "(e.g. 'latin-1' or 'cp1252') for a file saved in another encoding"
            ) from None
        except csv.Error as exc:
            raise self._refuse(f"it is not a readable CSV file ({exc})") from None

    def _csv_records(self) -> Iterator[list[str]]:
        if self._path is not None:
            with self._path.open(newline="", encoding=self._encoding) as handle:
                yield from csv.reader(handle)
        else:
            text = io.StringIO((self._data or b"").decode(self._encoding), newline="")
            yield from csv.reader(text)

    def _xlsx_spooled(self) -> Iterator[list[str]]:
        if self._spool is not None:
            self._spool.seek(0)
            yield from csv.reader(self._spool)
            return
        check_workbook(self._path, self._data, self.filename, self._limits)
        spool = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")  # noqa: SIM115
        complete = False
        try:
            writer = csv.writer(spool)
            for record in _guarded(_xlsx_records(self._path, self._data), self._refuse):
                writer.writerow(record)
                yield record
            complete = True
        finally:
            if complete:
                self._spool = spool
            else:
                spool.close()

    def _numbered(self, check_header: bool = False) -> Iterator[tuple[int, Row | None]]:
        """``(row number, row)``; ``None`` for a record wider than the header. Blank records
        are skipped but keep their numbers. With ``check_header``, the header is read and
        checked on the way (one pass over the file)."""
        if self.kind == "rows":
            yield from enumerate(self._rows or [], start=2)
            return
        records = self._records()
        header = next(records, None)
        if check_header:
            if header is None or not any(cell.strip() for cell in header):
                raise SourceValidationError(
                    f"source {self.filename!r} has no header row", source=self.filename
                )
            self.header = _check_header(header, self.filename)
        width = len(self.header)
        for number, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > width:
                yield number, None
                continue
            padded = record + [""] * (width - len(record))
            yield number, dict(zip(self.header, padded, strict=True))

    def numbered_rows(self) -> Iterator[tuple[int, Row]]:
        """``(row number, row)`` pairs of a checked source."""
        for number, row in self._numbered():
            if row is None:  # pragma: no cover - check() refuses such sources first
                raise ValueError(f"row {number} has more values than the header")
            yield number, row

    # -- checking -------------------------------------------------------------------------

    def check(self, on_duplicate: DuplicatePolicy) -> set[int]:
        """Check every row; return the row numbers to skip (duplicates under ``"skip"``).

        Raises :class:`SourceValidationError` listing every bad row: more values than columns,
        an empty ``phone_number``, or (under ``"error"``) a phone number seen on an earlier row.
        """
        if self.kind == "xls":
            # No reader for the legacy format: sent as it is, checked by the server.
            return set()
        problems: dict[tuple[str, str], list[int]] = {}
        seen: dict[str, int] = {}
        skip: set[int] = set()
        total = 0
        expected = 2
        for number, row in self._numbered(check_header=True):
            if number != expected:
                self.dense = False
            expected = number + 1
            if row is None:
                problems.setdefault(("too_many_values", "more values than columns"), []).append(
                    number
                )
                continue
            phone = row.get(PHONE_COLUMN, "").strip()
            if not phone:
                problems.setdefault(("missing_phone_number", "phone_number is empty"), []).append(
                    number
                )
                continue
            if on_duplicate == "keep":
                total += 1
                continue
            # Memory grows with the distinct phone numbers: this is the only per-row state.
            first = seen.setdefault(phone_identity(phone), number)
            if first != number:
                if on_duplicate == "error":
                    reason = f"phone_number {phone} repeats row {first}"
                    problems.setdefault(("duplicate_phone_number", reason), []).append(number)
                    continue
                if on_duplicate == "skip":
                    skip.add(number)
                    continue
            total += 1
        if problems:
            count = sum(len(rows) for rows in problems.values())
            raise SourceValidationError(
                f"{count} row(s) of {self.filename!r} cannot be sent",
                source=self.filename,
                problems=[
                    RowError(code=code, field=PHONE_COLUMN, message=message, rows=rows)
                    for (code, message), rows in problems.items()
                ],
            )
        self.total_rows = total
        return skip


def _check_header(cells: list[str], filename: str) -> list[str]:
    header = [cell.strip() for cell in cells]
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise SourceValidationError(
                f"{filename!r}: column {name!r} appears more than once (after trimming spaces)",
                source=filename,
            )
        seen.add(name)
    if PHONE_COLUMN not in header:
        raise SourceValidationError(
            f"{filename!r} has no {PHONE_COLUMN!r} column (columns: {header[:20]})",
            source=filename,
        )
    return header


def _guarded(
    records: Iterator[list[str]], refuse: Callable[[str], SourceValidationError]
) -> Iterator[list[str]]:
    """``records``, with any failure of the workbook reader turned into a refusal."""
    try:
        yield from records
    except SourceValidationError:
        raise
    except ModuleNotFoundError:
        raise
    except Exception as exc:
        # python-calamine and openpyxl raise their own kinds for a broken file (CalamineError,
        # zipfile.BadZipFile, KeyError, InvalidFileException, ...): one typed refusal for all.
        raise refuse(f"the workbook reader failed ({type(exc).__name__}: {exc})") from None


def _xlsx_records(path: Path | None, data: bytes | None) -> Iterator[list[str]]:
    """The first sheet's rows as text: python-calamine when installed (the ``xlsx`` extra; it
    reads a sheet about 15x faster than openpyxl, see ``benchmarks/xlsx_readers.py``), else
    openpyxl in read-only mode."""
    try:
        from python_calamine import CalamineWorkbook  # noqa: PLC0415 - optional
    except ModuleNotFoundError:
        pass
    else:
        if path is not None:
            workbook = CalamineWorkbook.from_path(str(path))
        else:
            workbook = CalamineWorkbook.from_filelike(io.BytesIO(data or b""))
        try:
            for values in workbook.get_sheet_by_index(0).iter_rows():
                yield [cell_text(value) for value in values]
        finally:
            workbook.close()
        return
    try:
        import openpyxl  # noqa: PLC0415 - optional dependency, imported when used
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "reading .xlsx sources needs python-calamine or openpyxl: "
            "pip install 'dialnexa-async[xlsx]'"
        ) from exc
    source: Any = path if path is not None else io.BytesIO(data or b"")
    book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [cell_text(value) for value in values]
    finally:
        book.close()


def _rows_from_iterable(rows: Iterable[object]) -> tuple[list[str], list[Row]]:
    header: list[str] = []
    columns: dict[str, str] = {}  # trimmed name -> first original spelling
    out: list[Row] = []
    for index, row in enumerate(rows):
        mapping = _row_mapping(row, index)
        text_row: Row = {}
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise TypeError(f"source row {index} has a non-string column name {key!r}")
            name = key.strip()
            original = columns.setdefault(name, key)
            if original != key or name in text_row:
                raise SourceValidationError(
                    f"columns {original!r} and {key!r} collide after trimming spaces"
                )
            if name not in header:
                header.append(name)
            text_row[name] = cell_text(value)
        out.append(text_row)
    if out and PHONE_COLUMN not in header:
        raise SourceValidationError(
            f"the rows have no {PHONE_COLUMN!r} column (columns: {header[:20]})"
        )
    if not out:
        header = [PHONE_COLUMN]
    return header, out


def open_source(
    source: object,
    *,
    encoding: str | None = None,
    workbook_limits: WorkbookLimits | None = None,
) -> Source:
    """A :class:`Source` for any accepted kind of input; wrong types and values raise here.

    ``encoding`` is a CSV file's text encoding (default UTF-8, with or without a BOM);
    ``workbook_limits`` bound an .xlsx (default :class:`WorkbookLimits`).
    """
    if encoding is not None:
        if not isinstance(encoding, str):
            raise TypeError(f"encoding must be a str, got {type(encoding).__name__}")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"encoding {encoding!r} is not a known text encoding") from None
    if workbook_limits is not None and not isinstance(workbook_limits, WorkbookLimits):
        raise TypeError("workbook_limits must be a WorkbookLimits")
    options: dict[str, Any] = {"encoding": encoding, "limits": workbook_limits}
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in _SUFFIX_TYPES:
            raise ValueError(f"source must be a .csv, .xlsx or .xls file, got {path.name!r}")
        if not path.is_file():
            raise ValueError(f"source file does not exist: {path}")
        if path.stat().st_size == 0:
            raise ValueError(f"source file is empty: {path}")
        return Source(kind=suffix[1:], filename=path.name, path=path, **options)  # type: ignore[arg-type]
    if isinstance(source, bytes | bytearray | memoryview):
        return _source_from_bytes(bytes(source), None, options)
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            raise TypeError("source file must be opened in binary mode ('rb')")
        name = getattr(source, "name", None)
        filename = Path(name).name if isinstance(name, str) else None
        return _source_from_bytes(bytes(data), filename, options)
    if isinstance(source, Mapping):
        raise TypeError("source must be an iterable of rows, not a single mapping")
    if isinstance(source, Iterable):
        header, rows = _rows_from_iterable(source)
        return Source(kind="rows", filename="leads.csv", rows=rows, header=header)
    raise TypeError(
        "source must be a path, bytes, a binary file, or an iterable of rows, "
        f"got {type(source).__name__}"
    )


def _source_from_bytes(data: bytes, filename: str | None, options: dict[str, Any]) -> Source:
    if not data.strip():
        raise ValueError("source is empty")
    suffix = Path(filename).suffix.lower() if filename else ""
    if data.startswith(_XLSX_MAGIC) or suffix == ".xlsx":
        return Source(kind="xlsx", filename=filename or "leads.xlsx", data=data, **options)
    if data.startswith(_XLS_MAGIC) or suffix == ".xls":
        return Source(kind="xls", filename=filename or "leads.xls", data=data, **options)
    if suffix and suffix != ".csv":
        raise ValueError(f"source must be a .csv, .xlsx or .xls file, got {filename!r}")
    return Source(kind="csv", filename=filename or "leads.csv", data=data, **options)


def plan_chunks(source: Source, chunk_size: int, skip: set[int]) -> Iterator[Chunk]:
    """The uploads for a checked source, lazily, in source order."""
    if source.kind != "xls" and source.total_rows == 0:
        return
    if source.kind == "xls" or (
        source.sendable_as_is and source.total_rows <= chunk_size and not skip
    ):
        rows = [] if source.kind == "xls" else list(source.numbered_rows())
        yield Chunk(
            rows=[row for _, row in rows],
            row_numbers=[number for number, _ in rows],
            filename=source.filename,
            content_type=source.content_type,
            data=source.raw_bytes(),
        )
        return
    stem = Path(source.filename).stem
    batch: list[tuple[int, Row]] = []
    for number, row in source.numbered_rows():
        if number in skip:
            continue
        batch.append((number, row))
        if len(batch) == chunk_size:
            yield _chunk(source.header, batch, stem)
            batch = []
    if batch:
        yield _chunk(source.header, batch, stem)


def _chunk(header: list[str], batch: list[tuple[int, Row]], stem: str) -> Chunk:
    rows = [row for _, row in batch]
    numbers = [number for number, _ in batch]
    return Chunk(
        rows=rows,
        row_numbers=numbers,
        filename=f"{stem}-rows-{numbers[0]}-{numbers[-1]}.csv",
        content_type=CSV_TYPE,
        data=build_csv(header, rows),
    )
