"""Finding a collection's files and deciding, for each, what indexing must do: nothing
(unchanged), note a new time (saved again, same content), move it (renamed: same content at
a new path, so nothing is embedded again), drop it (deleted), or read and embed it (new or
changed).

A file is unchanged when its size and modification time are those recorded; when they differ,
its content hash decides. Files under a root that is not there now (an unplugged drive, a
network share that is down) are kept as they are, not treated as deleted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from desktop.core.docs.records import FileRecord

#: Folders never entered: version control, caches, virtual environments, dependencies.
SKIPPED_FOLDERS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".idea", ".vscode", ".cache", "$RECYCLE.BIN",
})
#: Collections stop growing past this many files (someone picked their whole disk); the scan
#: says so, and files it did not reach are left as they were.
MAX_FILES = 200_000
_HASH_BLOCK = 1024 * 1024


def skipped_name(name: str) -> bool:
    """Whether a file is left out by its name: hidden files (which hold settings and secrets
    more often than documents) and editors' and databases' temporary and lock files."""
    return (name.startswith((".", "~$")) or name.endswith(("~", ".swp", ".tmp", ".part",
                                                             "-wal", "-shm", "-journal")))


@dataclass(frozen=True)
class FoundFile:
    """A file found under a root, with its size and modification time (nanoseconds)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Scan:
    """What a walk of the roots found: files, the folders walked, roots that are not there,
    folders that could not be listed (path -> reason), and whether it stopped at
    :data:`MAX_FILES`."""

    files: dict[str, FoundFile] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    truncated: bool = False


def _found(path: str) -> FoundFile | None:
    try:
        info = os.stat(path)
    except OSError:
        return None  # gone between listing and looking: not there
    return FoundFile(path, info.st_size, info.st_mtime_ns)


def scan_roots(roots: Sequence[str], max_files: int = MAX_FILES,
               checkpoint: Callable[[], None] | None = None,
               skip: Sequence[str] = ()) -> Scan:
    """Walk *roots* (folders and files). Links to folders are not followed (they can loop).

    *checkpoint* is called every few hundred files (it may wait, or raise to stop the walk).
    Folders under the roots whose paths are in *skip* are not entered.
    """
    scan = Scan()
    skipped = frozenset(os.path.normpath(path) for path in skip)

    def add(path: str) -> bool:
        if len(scan.files) >= max_files:
            scan.truncated = True
            return False
        if checkpoint is not None and len(scan.files) % 500 == 499:
            checkpoint()
        found = _found(path)
        if found is not None:
            scan.files[path] = found
        return True

    for root in roots:
        if os.path.isfile(root):
            if not add(root):
                break
            continue
        if not os.path.isdir(root):
            scan.missing_roots.append(root)
            continue

        def failed(error: OSError) -> None:
            where = error.filename or root
            scan.errors[str(where)] = f"folder cannot be read ({error.strerror or error})"

        for folder, subfolders, names in os.walk(root, onerror=failed):
            scan.folders.append(folder)
            subfolders[:] = sorted(d for d in subfolders
                                   if d not in SKIPPED_FOLDERS and not d.startswith(".")
                                   and os.path.normpath(os.path.join(folder, d)) not in skipped)
            for name in sorted(names):
                if skipped_name(name):
                    continue
                path = os.path.join(folder, name)
                if path in scan.files or not os.path.isfile(path):
                    continue  # found twice (roots inside roots), or a socket, a fifo…
                if not add(path):
                    return scan
        if scan.truncated:
            break
    return scan


def file_hash(path: str) -> str | None:
    """The content hash of a file (BLAKE2b, 128 bits), or None if it cannot be read."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass(frozen=True)
class Work:
    """A file to read and embed: new or changed, with its hash if it is known already."""

    file: FoundFile
    hash: str | None
    why: str  # "new", "changed" or "model" (embedded by another model)


@dataclass
class Plan:
    """What an indexing run does, decided before anything is read."""

    unchanged: list[FileRecord] = field(default_factory=list)
    touched: list[tuple[FileRecord, FoundFile]] = field(default_factory=list)
    renamed: list[tuple[FileRecord, FoundFile]] = field(default_factory=list)
    deleted: list[FileRecord] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)


def _under_any(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def looks_changed(known: Mapping[str, FileRecord], scan: Scan, skip: Sequence[str] = ()) -> bool:
    """Whether indexing would find anything to do, judged by paths, sizes and times alone
    (nothing is read): a file new, gone, or with another size or time than recorded. Paths
    under *skip* do not count.
    """
    for path, found in scan.files.items():
        record = known.get(path)
        if record is None or (record.size, record.mtime_ns) != (found.size, found.mtime_ns):
            if not _under_any(path, skip):
                return True
    if scan.truncated:
        return False  # files not reached are kept as they are
    kept = [*scan.missing_roots, *scan.errors, *skip]
    return any(path not in scan.files and path not in scan.errors and not _under_any(path, kept)
               for path in known)


def plan_changes(known: Mapping[str, FileRecord], scan: Scan, model_id: str,
                 hash_of: Callable[[FoundFile], str | None]) -> Plan:
    """Decide what to do with each file found and each file recorded (see the module's text).

    *hash_of* is asked only when size and time alone cannot decide.
    """
    plan = Plan()
    new: list[FoundFile] = []
    for path, found in scan.files.items():
        record = known.get(path)
        if record is None:
            new.append(found)
            continue
        stale_model = record.state == "indexed" and record.model_id != model_id
        if record.size == found.size and record.mtime_ns == found.mtime_ns:
            if stale_model:
                plan.work.append(Work(found, record.hash, "model"))
            else:
                plan.unchanged.append(record)
            continue
        digest = hash_of(found)
        if digest is not None and digest == record.hash and not stale_model:
            plan.touched.append((record, found))
        else:
            plan.work.append(Work(found, digest, "changed"))
    present = set(scan.files) | set(scan.errors)
    gone = []
    for path, record in known.items():
        if path in present:
            continue
        if scan.truncated or _under_any(path, [*scan.missing_roots, *scan.errors]):
            # Not reached, on a drive that is not there, or in a folder that cannot be listed
            # now: kept as it was.
            plan.unchanged.append(record)
        else:
            gone.append(record)
    # Same content at a new path as at a path now gone: moved, so the index moves with it.
    by_hash: dict[str, list[FileRecord]] = {}
    for record in gone:
        if record.state == "unreadable" or record.model_id == model_id:
            by_hash.setdefault(record.hash, []).append(record)
    for found in new:
        digest = hash_of(found) if by_hash else None
        candidates = by_hash.get(digest or "")
        if candidates:
            record = candidates.pop(0)
            gone.remove(record)
            plan.renamed.append((record, found))
        else:
            plan.work.append(Work(found, digest, "new"))
    plan.deleted = gone
    return plan
