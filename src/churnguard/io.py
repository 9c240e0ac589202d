"""Output: files and folders that appear complete or not at all, and text safe for a terminal."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path`` to write; it replaces ``path`` on success
    and is removed on failure, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = temporary_sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temporary_sibling(path: Path, suffix: str) -> Path:
    """A hidden sibling of ``path`` named with this process's id, so a later run can tell a
    leftover of a killed run (:func:`remove_stale`) from the work of a live one."""
    return path.with_name(f".{path.name}.{os.getpid()}.{suffix}")


def remove_stale(path: Path) -> None:
    """Remove the temporary siblings of ``path`` left by runs that were killed: those named
    with the id of a process that no longer exists."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\..+")
    for sibling in path.parent.glob(f".{glob_escape(path.name)}.*"):
        match = pattern.fullmatch(sibling.name)
        if match and not _alive(int(match.group(1))):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def glob_escape(name: str) -> str:
    """``name`` for :meth:`pathlib.Path.glob`, its pattern characters taken literally."""
    return re.sub(r"[\[*?]", lambda m: f"[{m.group()}]", name)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder of part files (what Spark writes).

    The new folder is renamed into place; a previous file or folder of that name is moved aside
    first and removed after, so ``path`` is only ever absent between two renames.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = temporary_sibling(path, f"{uuid.uuid4().hex[:12]}.tmp")
    old = tmp.with_name(tmp.name + ".old")
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def data_files(path: Path) -> list[Path]:
    """``path`` itself, or the data files of a folder (hidden and ``_`` files left out)."""
    if not path.is_dir():
        return [path]
    hidden = (".", "_")
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(n.startswith(hidden) for n in p.relative_to(path).parts)
    )


def sha256_path(path: Path) -> str:
    """SHA-256 of a file; of a folder, SHA-256 over its data files' names and hashes."""
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for part in data_files(path):
        digest.update(f"{part.relative_to(path)}:{sha256_file(part)};".encode())
    return digest.hexdigest()


def listing_sha256(path: Path) -> str:
    """SHA-256 over the names, sizes and modification times of a file or a folder's data
    files: cheap, and it changes when the data does."""
    digest = hashlib.sha256()
    for part in data_files(path):
        stat = part.stat()
        name = part.name if part == path else part.relative_to(path)
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


#: Characters that move the cursor, recolour or rewrite a terminal, or reorder its text:
#: C0 and C1 controls, DEL, line and paragraph separators and the bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``), so
    a name or value from the data can neither drive a terminal nor break a line of output."""
    return _CONTROL.sub(_escaped, str(text))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: One folder or file name: letters, digits, '.', '_', '-', not starting with '.'.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def is_safe_name(text: str) -> bool:
    """Whether ``text`` is one path component that cannot climb out of its folder or hide."""
    return bool(_SAFE_NAME.fullmatch(text))


#: What a spreadsheet runs as a formula when a text cell starts with it (and what would break a
#: row: a tab, CR or LF), full-width forms included.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def neutralise(cell: str) -> str:
    """``=cmd()`` → ``'=cmd()``: a spreadsheet shows the text instead of running it. A plain
    number (``-1001``, ``+4930123``) runs nothing and is written as it is, so an id stays
    joinable."""
    if cell.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(cell):
        return f"'{cell}"
    return cell


def restore(cell: str) -> str:
    """The text :func:`neutralise` was given (the leading ``'`` it added taken off)."""
    if cell.startswith("'") and cell[1:2] and cell[1:2] in FORMULA_STARTS:
        return cell[1:]
    return cell


_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
