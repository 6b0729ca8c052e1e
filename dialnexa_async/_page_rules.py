"""Pure: the rules a scan checks every page against, so that it never ends short.

A scan asks for pages of ``limit`` items. The server's answers can disagree with that and with
themselves: a server may clamp its pages to fewer items (saying so in ``meta.limit`` or not),
send one short or empty page (a lagging replica), lie in ``meta``, or the list may change while
it is read. :class:`PageRules` judges each page, in page order, and says what the scan does
next: go on (:data:`MORE`), stop (:data:`END`), or read the same page once more
(:data:`REREAD`); a page that still contradicts the plan after its second reading raises
:class:`PlanViolation`, which the pager turns into a ``PaginationError``. Never is a page that
contradicts the plan taken as the end of the list.

The plan:

- **Page size.** The first page of a scan teaches the server's real page size ``S``: what it
  holds when full (``meta.limit``, when it is between 1 and ``limit``, is taken as the server
  saying it clamps). A first page shorter than that while the total says more is read again;
  the same short page twice means the server clamps its pages to that many items.
- **Counts trusted.** While ``meta.total`` agrees with the pages, page ``n`` must hold exactly
  ``min(S, total - (n - 1) * S)`` items (by that page's own total): fewer is a short page, read
  again once; the scan ends on the page the total says is last. A page holding more than its
  own total allows (``total 0`` with full pages, a stale total) makes the counts untrusted.
- **Counts untrusted.** Then the scan reads on past every full page and ends on a short or empty
  one, read twice to be sure.
- **The list changing.** A total that falls during the scan (read again to be sure) means leads
  were removed, which can shift a lead not yet read onto a page already read: the scan raises
  rather than end short. Leads read twice are dropped by id; more of them than the total grew
  means leads were re-ordered (one moved behind the scan is one it would miss): the scan raises.
- **Absurd answers.** A page holding more items than asked for, or more than the learned page
  size, is an error.

What no offset pager can see, and the README states as the bound: a removal behind the scan
balanced by an insertion ahead of it between two page reads (the total and the pages agree,
yet one lead shifted past the scan).
"""

from __future__ import annotations

from typing import Final, Literal

from .models import PageMeta

__all__ = [
    "END",
    "MORE",
    "REREAD",
    "PageRules",
    "PlanViolation",
    "Verdict",
    "pages_for",
]

Verdict = Literal["more", "end", "reread"]
MORE: Final = "more"
END: Final = "end"
REREAD: Final = "reread"


class PlanViolation(Exception):
    """A page contradicts the scan's plan even when read again (the message says how)."""


def pages_for(total: int, size: int) -> int:
    """``ceil(total / size)`` in whole numbers (no float, so a total of any size works)."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return -(-max(total, 0) // size)


def _expected(number: int, size: int, total: int) -> int:
    """How many items page ``number`` holds when every page holds ``size`` and there are
    ``total`` items."""
    return min(size, max(0, total - (number - 1) * size))


class PageRules:
    """Judges the pages of one scan, in page order; see the module docstring.

    Attributes:
        limit: The page size asked for.
        size: The server's page size, once the first page has taught it (else ``None``).
        trusted: Whether ``meta.total`` has agreed with every page so far.
        last: The last page of the plan so far (grows as the list grows).
    """

    def __init__(self, limit: int, first: int = 1) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.first = first
        self.size: int | None = None
        self.trusted = True
        self.last = first
        self._first_total = 0
        self._max_total = 0
        self._repeats = 0

    @property
    def growth(self) -> int:
        """How many items the total grew by since the first page (while trusted)."""
        return self._max_total - self._first_total

    def judge(self, number: int, count: int, meta: PageMeta, *, second_look: bool) -> Verdict:
        """What to do after page ``number``, which holds ``count`` items and came with
        ``meta``. ``second_look``: this is the page read again after a :data:`REREAD` (a
        second contradiction raises :class:`PlanViolation`)."""
        if count > self.limit:
            raise PlanViolation(
                f"page {number} holds {count} leads, more than the {self.limit} asked for"
            )
        size = self.size
        if size is None:
            size = self._learn_size(number, count, meta, second_look)
            if size is None:
                return REREAD
        if count > size:
            raise PlanViolation(
                f"page {number} holds {count} leads, more than the page size of {size} "
                f"that page {self.first} showed"
            )
        total = meta.total
        if self.trusted:
            if total < self._max_total:
                if not second_look:
                    return REREAD
                raise PlanViolation(
                    f"the list shrank from {self._max_total} to {total} leads during the scan "
                    f"(page {number}): leads may have shifted past it; read it again"
                )
            expected = _expected(number, size, total)
            if count == expected:
                self._max_total = total
                self.last = max(self.last, pages_for(total, size))
                if count == size and (number * size < total or meta.total_pages > number):
                    self.last = max(self.last, number + 1)
                    return MORE
                return END
            if count < expected:
                if not second_look:
                    return REREAD
                raise PlanViolation(
                    f"page {number} held {count} leads where {expected} were expected "
                    f"(page size {size}, total {total}), the second time it was read too"
                )
            self.trusted = False  # more than its own total allows: the counts are not true
        if count == size:
            self.last = max(self.last, number + 1)
            return MORE
        # A short page ends a list whose counts are untrusted, once it is seen twice.
        return END if second_look else REREAD

    def _learn_size(self, number: int, count: int, meta: PageMeta, second_look: bool) -> int | None:
        """Learn the page size from the scan's first page (``None``: read it again first)."""
        # A meta.limit below the one asked for is the server saying it clamps its pages.
        hint = meta.limit if 1 <= meta.limit < self.limit else self.limit
        if count == 0 and not second_look:
            # Read twice even when the total agrees: a lagging replica's empty page with a
            # total of 0 looks like an empty list.
            return None
        if count >= hint:
            size = count  # full (fuller than a declared clamp: the declaration was wrong)
        elif count == 0 or count == _expected(number, hint, meta.total):
            size = hint  # the list ends here, or an empty page judged as any other below
        elif not second_look:
            return None  # short while the total says more: a short page, or a clamp?
        else:
            size = count  # the same short page twice: the server's pages hold this many
        self.size = size
        self._first_total = self._max_total = meta.total
        return size

    def count_repeats(self, number: int, repeats: int) -> None:
        """Account for ``repeats`` items of page ``number`` already read on an earlier page.

        Each insertion behind the scan accounts for one repeat; more repeats than the total
        grew by mean the list was re-ordered (a lead moved behind the scan is one it misses) or
        the server cycles through its pages."""
        if not repeats:
            return
        self._repeats += repeats
        if self._repeats > self.growth:
            raise PlanViolation(
                f"page {number} repeats {repeats} leads already read while the total grew by "
                f"{self.growth}: the list was re-ordered during the scan, or the server seems "
                "to cycle through its pages; read it again"
            )
