"""What the catalog tab shows: the search, the filters and the order, as a proxy model over the
catalog's list.

The rules are plain functions of a catalog entry (and its memory verdict), so the filter bar,
the proxy and the tests all read the same definitions:

- **size**: by parameters, as the catalog names them ("135M", "3.8B"): tiny under 1B, small
  from 1B to under 3B, medium from 3B to under 7B, large 7B and more;
- **fits in memory**: the estimate fits in the memory free now, tightly or with room;
- **license**: the catalog's license id (``apache-2.0``, ``gemma``…);
- **fully open**: the catalog tags the model ``fully-open``: open weights under an open-source
  license, and its training data and code published too;
- **kind**: chat or embedding;
- **search**: every word of the text is found, ignoring case, in the entry's name, repository,
  description, tags, license or quantization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from desktop.core.catalog import CatalogEntry
from desktop.core.memory import FITS, TIGHT, MemoryFit
from desktop.ui.models.catalog import CatalogModel, EntryRole, FitRole

Index = QModelIndex | QPersistentModelIndex

FULLY_OPEN_TAG = "fully-open"
ANY = ""  # no choice made: every size, license or kind

#: size buckets: (key, label, smallest parameter count in it)
SIZES = (("tiny", "Tiny (under 1B)", 0), ("small", "Small (1–3B)", 1_000_000_000),
         ("medium", "Medium (3–7B)", 3_000_000_000), ("large", "Large (7B+)", 7_000_000_000))
#: the orders, by key: what the sort box says
SORTS = {"recommended": "Recommended", "name": "Name", "smallest": "Smallest first",
         "largest": "Largest first", "newest": "Newest first"}
KINDS = {"chat": "Chat", "embedding": "Embedding"}
#: short names for the licenses the catalog uses; another shows as its id
LICENSE_NAMES = {"apache-2.0": "Apache 2.0", "mit": "MIT", "gemma": "Gemma terms",
                 "llama3.1": "Llama 3.1 license", "llama3.2": "Llama 3.2 license",
                 "llama3.3": "Llama 3.3 license", "bsd-3-clause": "BSD 3-Clause"}
_PARAMETERS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$", re.IGNORECASE)
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def license_name(license_id: str) -> str:
    """'apache-2.0' -> 'Apache 2.0'; a license without a short name keeps its id."""
    return LICENSE_NAMES.get(license_id.lower(), license_id)


def parameter_count(entry: CatalogEntry) -> int | None:
    """The parameters as the catalog names them ("1B" is 1,000,000,000 even where the exact
    count is a little under), else the exact count, else None."""
    match = _PARAMETERS.match(entry.parameters)
    if match:
        return round(float(match.group(1)) * _SCALE[match.group(2).upper()])
    return entry.parameters_count


def size_of(entry: CatalogEntry) -> str | None:
    """The size bucket of *entry* ("tiny", "small", "medium", "large"), or None if unknown."""
    count = parameter_count(entry)
    if count is None:
        return None
    return [key for key, _label, least in SIZES if count >= least][-1]


def fully_open(entry: CatalogEntry) -> bool:
    """Open weights, data and training code: the catalog says so with a tag."""
    return FULLY_OPEN_TAG in entry.tags


def fits_in_memory(fit: MemoryFit | None) -> bool:
    return fit is not None and fit.verdict in (FITS, TIGHT)


def context_words(tokens: int) -> str:
    """8192 -> '8K', 131072 -> '128K', 1000 -> '1,000'."""
    return f"{tokens // 1024}K" if tokens >= 1024 and tokens % 1024 == 0 else f"{tokens:,}"


@dataclass(frozen=True)
class Filters:
    """The choices of the filter bar; the defaults show every model in the catalog's order."""

    text: str = ""
    size: str = ANY
    license: str = ANY
    kind: str = ANY
    fits: bool = False
    fully_open: bool = False
    sort: str = "recommended"

    @property
    def active(self) -> bool:
        """Whether anything is left out (the order does not count)."""
        return self != Filters(sort=self.sort)

    def cleared(self) -> Filters:
        """The same order, nothing left out."""
        return replace(Filters(), sort=self.sort)


def matches(entry: CatalogEntry, fit: MemoryFit | None, filters: Filters) -> bool:
    """Whether *entry* passes every filter in *filters*."""
    if filters.size and size_of(entry) != filters.size:
        return False
    if filters.license and entry.license != filters.license:
        return False
    if filters.kind and entry.kind != filters.kind:
        return False
    if filters.fits and not fits_in_memory(fit):
        return False
    if filters.fully_open and not fully_open(entry):
        return False
    words = filters.text.casefold().split()
    if words:
        haystack = " ".join((entry.name, entry.repo_id, entry.description, " ".join(entry.tags),
                             entry.license, license_name(entry.license),
                             entry.quantization)).casefold()
        return all(word in haystack for word in words)
    return True


def sort_key(entry: CatalogEntry, row: int, sort: str) -> tuple[Any, ...]:
    """Where *entry* (at *row* of the catalog) goes in the order *sort*: ties keep the
    catalog's order."""
    if sort == "name":
        return (entry.name.casefold(), row)
    if sort == "smallest":
        return (entry.size_bytes, row)
    if sort == "largest":
        return (-entry.size_bytes, row)
    if sort == "newest":
        # Months as numbers, newest first; a model of unknown date goes last.
        month = int(entry.released.replace("-", "")) if entry.released else 0
        return (-month, row)
    return (row,)


class CatalogFilterModel(QSortFilterProxyModel):
    """The catalog's entries that pass the filters, in the order chosen."""

    def __init__(self, source: CatalogModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.filters = Filters()
        self.setSourceModel(source)
        self.setDynamicSortFilter(True)  # a memory verdict that changes moves an entry in/out
        self.sort(0, Qt.SortOrder.AscendingOrder)

    def set_filters(self, filters: Filters) -> None:
        if filters == self.filters:
            return
        if filters.sort != self.filters.sort:
            self.filters = filters
            self.invalidate()  # filtered and sorted again
            return
        self.beginFilterChange()
        self.filters = filters
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def entry_at(self, row: int) -> CatalogEntry | None:
        return self.index(row, 0).data(EntryRole) if 0 <= row < self.rowCount() else None

    def entries(self) -> list[CatalogEntry]:
        """The entries shown, in their order."""
        return [self.index(row, 0).data(EntryRole) for row in range(self.rowCount())]

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        index = self.sourceModel().index(source_row, 0, source_parent)
        return matches(index.data(EntryRole), index.data(FitRole), self.filters)

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802 - Qt's name
        sort = self.filters.sort
        return (sort_key(left.data(EntryRole), left.row(), sort)
                < sort_key(right.data(EntryRole), right.row(), sort))
