"""Pure: decide whether an .xlsx workbook is safe to hand to a reader, before any reader sees it.

A reader trusts a workbook's own description of itself, and a hostile one lies: a 1.5 KB file
whose sheet holds cells at ``A1`` and ``XFD1048576`` makes python-calamine allocate the whole
rectangle between them (512 GiB) and abort the process; a zip bomb inflates a few KiB into
gigabytes. So, before a reader loads anything, :func:`check_workbook` reads the archive's
directory and streams the first sheet's XML once (in chunks, never whole), and refuses with
:class:`~dialnexa_async.errors.SourceValidationError` a workbook that is not a zip, has no
workbook part, declares more uncompressed bytes or a higher compression ratio than the limits
allow, or whose first sheet reaches past the row, column or cell limits (by its ``dimension``
or by the cells it actually places). What the reader then loads is bounded by those limits.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import attrs

from .errors import SourceValidationError

__all__ = ["WorkbookLimits", "check_workbook", "column_number"]

_MiB = 1024 * 1024
_SCAN_CHUNK = 1024 * 1024
# Parts smaller than this may compress as well as they like: they cannot hurt.
_RATIO_FLOOR_BYTES = 1 * _MiB
_SMALL_PART_BYTES = 4 * _MiB  # workbook.xml and its relationships: read whole, so bounded
_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|c|dimension)\b([^>]*)>")
# The fast path, for tags without a namespace prefix (as Excel and every library write them):
# literal starts let the regular expressions skip ahead at C speed.
_CELL_REF = re.compile(rb'<c\s(?:[^>]*?\s)?r="([A-Za-z]{1,3})([0-9]{1,9})"')
_ROW_REF = re.compile(rb'<row\s(?:[^>]*?\s)?r="([0-9]{1,9})"')
_DIMENSION = re.compile(rb'<dimension\s(?:[^>]*?\s)?ref="([^"]*)"')
_PREFIXED = re.compile(rb"<[A-Za-z_][\w.-]*:(?:c|row|dimension)[\s/>]")
_REF = re.compile(rb'\s(?:r|ref)\s*=\s*"([^"]*)"')
_CELL = re.compile(r"^\$?([A-Za-z]{1,3})\$?([0-9]{1,9})$")
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


@attrs.frozen(kw_only=True)
class WorkbookLimits:
    """What an .xlsx enrolment source may hold; anything beyond is refused before it is read.

    The defaults are far above a real lead list (200,000 rows of 50 columns fit) and far
    below what takes a process down.

    Attributes:
        max_rows: The last row the first sheet may use (Excel's own limit by default).
        max_columns: The last column the first sheet may use (a lead needs a phone number
            and its variables; 1,000 columns is generous).
        max_cells: Rows x columns of the sheet's used rectangle, which is what a reader
            allocates (python-calamine holds every cell of it in memory).
        max_uncompressed_bytes: The archive's parts together, uncompressed.
        max_compression_ratio: Uncompressed / compressed size of any part over 1 MiB (real
            sheets compress 5-25x; zip bombs 1,000x).
    """

    max_rows: int = 1_048_576
    max_columns: int = 1_000
    max_cells: int = 10_000_000
    max_uncompressed_bytes: int = 512 * _MiB
    max_compression_ratio: float = 100.0


def column_number(letters: str) -> int:
    """``A`` → 1, ``Z`` → 26, ``AA`` → 27, ``XFD`` → 16384."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + (ord(letter) - ord("A") + 1)
    return number


def _refuse(filename: str, reason: str) -> SourceValidationError:
    return SourceValidationError(f"{filename!r} cannot be read: {reason}", source=filename)


def check_workbook(
    path: Path | None, data: bytes | None, filename: str, limits: WorkbookLimits
) -> None:
    """Refuse an .xlsx that a reader should not load; see the module docstring."""
    try:
        archive = zipfile.ZipFile(path if path is not None else io.BytesIO(data or b""))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse(filename, f"not an .xlsx workbook ({exc})") from None
    with archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if total > limits.max_uncompressed_bytes:
            raise _refuse(
                filename,
                f"it would inflate to {total} bytes, over max_uncompressed_bytes "
                f"({limits.max_uncompressed_bytes})",
            )
        for info in infos:
            if info.file_size > _RATIO_FLOOR_BYTES:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_compression_ratio:
                    raise _refuse(
                        filename,
                        f"part {info.filename!r} is compressed {ratio:.0f}:1, over "
                        f"max_compression_ratio ({limits.max_compression_ratio:g}): a zip bomb?",
                    )
        try:
            sheet = _first_sheet(archive)
            _check_sheet(archive, sheet, filename, limits)
        except SourceValidationError:
            raise
        except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError, EOFError) as exc:
            raise _refuse(filename, f"a broken workbook ({type(exc).__name__}: {exc})") from None


def _small_xml(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    info = archive.getinfo(name)
    if info.file_size > _SMALL_PART_BYTES:
        raise zipfile.BadZipFile(f"{name} is {info.file_size} bytes")
    text = archive.read(info)
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        # Workbook parts never declare a DTD; one that does is an entity-expansion attack.
        raise zipfile.BadZipFile(f"{name} declares a DTD")
    return ElementTree.fromstring(text)  # noqa: S314 - bounded size, no DTD (checked above)


def _first_sheet(archive: zipfile.ZipFile) -> str:
    """The archive name of the workbook's first sheet (the one readers take as index 0)."""
    names = set(archive.namelist())
    if "xl/workbook.xml" not in names:
        raise zipfile.BadZipFile("a zip without xl/workbook.xml")
    workbook = _small_xml(archive, "xl/workbook.xml")
    first = next((el for el in workbook.iter() if el.tag.endswith("}sheet")), None)
    rel_id = None if first is None else first.get(f"{{{_REL_NS}}}id")
    if rel_id is not None and "xl/_rels/workbook.xml.rels" in names:
        rels = _small_xml(archive, "xl/_rels/workbook.xml.rels")
        for rel in rels.iter(f"{{{_PKG_REL_NS}}}Relationship"):
            if rel.get("Id") == rel_id and rel.get("Target"):
                target = rel.get("Target", "")
                name = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                name = posixpath.normpath(name)
                if name in names:
                    return name
    if "xl/worksheets/sheet1.xml" in names:
        return "xl/worksheets/sheet1.xml"
    raise zipfile.BadZipFile("the workbook has no worksheet")


@attrs.define
class _Extent:
    """The used rectangle of a sheet, as its XML is streamed."""

    rows: int = 0
    columns: int = 0
    row: int = 0  # the row being read
    column: int = 0  # the last column placed in it

    def take(self, tag: bytes, attributes: bytes) -> tuple[int, int]:
        """Advance over one tag; return the (rows, columns) it reaches."""
        found = _REF.search(attributes)
        ref = found.group(1).decode("ascii", "replace") if found else None
        if tag == b"row":
            self.row = int(ref) if ref and ref.isdigit() else self.row + 1
            self.column = 0
            return self.row, 0
        if tag == b"dimension":
            # "A1:XFD1048576" (or one cell): what the sheet claims, which a reader may trust.
            corner = (ref or "").split(":")[-1]
            return _cell(corner) or (0, 0)
        cell = _cell(ref) if ref else None
        if cell is None:
            self.column += 1  # a cell without a reference follows the previous one
            return max(self.row, 1), self.column
        self.row = max(self.row, cell[0])
        self.column = cell[1]
        return cell


def _cell(ref: str) -> tuple[int, int] | None:
    match = _CELL.match(ref)
    if match is None:
        return None
    return int(match.group(2)), column_number(match.group(1))


def _segments(archive: zipfile.ZipFile, name: str, filename: str) -> Iterator[bytes]:
    """The part's bytes in pieces of about 1 MiB, each ending between two tags."""
    tail = b""
    with archive.open(name) as stream:
        while chunk := stream.read(_SCAN_CHUNK):
            buffer = tail + chunk
            # A tag cut by the chunk's end is carried into the next piece.
            cut = buffer.rfind(b"<")
            if cut == -1 or buffer.find(b">", cut) != -1:
                cut = len(buffer)
            yield buffer[:cut]
            tail = buffer[cut:]
            if len(tail) > _SCAN_CHUNK:
                raise _refuse(filename, "a sheet tag longer than 1 MiB")


def _check_sheet(
    archive: zipfile.ZipFile, name: str, filename: str, limits: WorkbookLimits
) -> None:
    """Stream the sheet once (fast: regular expressions over whole pieces) and, only if some
    cell does not name its place, once more tag by tag (precise: such a cell follows the one
    before it)."""
    rows = columns = 0
    for piece in _segments(archive, name, filename):
        cells = _CELL_REF.findall(piece)
        all_cells = piece.count(b"<c ") + piece.count(b"<c>") + piece.count(b"<c/>")
        all_cells += piece.count(b"<c\t") + piece.count(b"<c\n") + piece.count(b"<c\r")
        if len(cells) != all_cells or (b":" in piece and _PREFIXED.search(piece)):
            _check_sheet_tag_by_tag(archive, name, filename, limits)
            return
        if cells:
            letters = max({column for column, _ in cells}, key=lambda c: (len(c), c.upper()))
            columns = max(columns, column_number(letters.decode("ascii")))
            rows = max(rows, *map(int, {row for _, row in cells}))
        row_refs = _ROW_REF.findall(piece)
        if row_refs:
            rows = max(rows, *map(int, set(row_refs)))
        for ref in _DIMENSION.findall(piece):
            declared = _cell(ref.decode("ascii", "replace").split(":")[-1])
            if declared is not None:
                rows, columns = max(rows, declared[0]), max(columns, declared[1])
        _check_extent(rows, columns, filename, limits)


def _check_sheet_tag_by_tag(
    archive: zipfile.ZipFile, name: str, filename: str, limits: WorkbookLimits
) -> None:
    extent = _Extent()
    for piece in _segments(archive, name, filename):
        for match in _TAG.finditer(piece):
            rows, columns = extent.take(match.group(1), match.group(2))
            if rows > extent.rows or columns > extent.columns:
                extent.rows = max(extent.rows, rows)
                extent.columns = max(extent.columns, columns)
                _check_extent(extent.rows, extent.columns, filename, limits)


def _check_extent(rows: int, columns: int, filename: str, limits: WorkbookLimits) -> None:
    if columns > limits.max_columns:
        raise _refuse(
            filename,
            f"its first sheet reaches column {columns}, over max_columns ({limits.max_columns})",
        )
    if rows > limits.max_rows:
        raise _refuse(
            filename, f"its first sheet reaches row {rows}, over max_rows ({limits.max_rows})"
        )
    if rows * columns > limits.max_cells:
        raise _refuse(
            filename,
            f"its first sheet spans {rows} rows x {columns} columns, over max_cells "
            f"({limits.max_cells})",
        )
