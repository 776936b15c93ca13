"""Safe names and safe destinations: the checks for everything naslab writes to disk.

- :func:`check_name` refuses a study name that is not a safe file name
  (:data:`NAME_RULE`); :func:`safe_file_name` maps any stored name (one made before
  the rule) to a file name that is;
- :func:`checked_destination` refuses a destination naslab must not write: a symbolic
  link, a device, a FIFO, a socket, a folder where a file is expected (or the other
  way round), an existing file or non-empty folder without ``force``, a place that
  is not writable;
- :func:`atomic_file` and :func:`atomic_folder` write to a temporary sibling and
  rename it into place only once complete: a failed write (a full disk) leaves the
  destination as it was and no temporary file behind;
- :func:`contained` resolves a path read from a file (e.g. ``trial.json``) and
  refuses one that leads outside its folder (absolute, ``..``, a link pointing out).

Write errors (``OSError``) become :class:`~naslab.core.errors.StorageError`;
refused destinations and names are :class:`~naslab.core.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from naslab.core.errors import ConfigError, StorageError

__all__ = [
    "NAME_RULE",
    "atomic_file",
    "atomic_folder",
    "check_name",
    "checked_destination",
    "contained",
    "is_safe_name",
    "safe_file_name",
    "safe_name_from",
    "sha256_file",
]

#: The longest name :func:`check_name` accepts.
MAX_NAME_LENGTH = 200
_NAME = re.compile(rf"(?![.-])[A-Za-z0-9._=,\[\]-]{{1,{MAX_NAME_LENGTH}}}")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._=,\[\]-]")
#: What :func:`check_name` accepts, in words (for error messages and docs).
NAME_RULE = (f"1-{MAX_NAME_LENGTH} characters: ASCII letters, digits and . _ - = , [ ], "
             "not starting with . or -")


def is_safe_name(name: Any) -> bool:
    """Whether ``name`` follows :data:`NAME_RULE` (usable as a file name as is)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(kind: str, name: Any) -> str:
    """``name`` if it follows :data:`NAME_RULE`, else :class:`ConfigError` saying so
    (``kind``, e.g. ``"study name"``, starts the message)."""
    if not is_safe_name(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else (
            f"{name[:60]!r}... ({len(name)} characters)")
        raise ConfigError(f"{kind} {shown} is not accepted; use {NAME_RULE}")
    return name


def safe_name_from(text: str) -> str:
    """A name following :data:`NAME_RULE` made from ``text`` (for generated names):
    each other character becomes ``_``, leading ``.`` and ``-`` go, at most
    :data:`MAX_NAME_LENGTH` characters."""
    name = _UNSAFE_CHAR.sub("_", text).lstrip(".-")[:MAX_NAME_LENGTH]
    return name or "study"


def safe_file_name(name: str) -> str:
    """A file name for ``name``: the name itself when it is safe, else the safe
    characters of it plus a hash of the whole name (so two names never share one)."""
    if is_safe_name(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = _UNSAFE_CHAR.sub("_", name)[:100].lstrip(".-")
    return f"{stem}-{digest}" if stem else f"study-{digest}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- destinations


def _what(mode: int) -> str:
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                        (stat.S_ISREG, "a file"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "a special file"


def _lstat(path: Path) -> os.stat_result | None:
    """``os.lstat(path)``, None if nothing is there; ConfigError if it cannot be looked at."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise ConfigError(f"cannot write {str(path)!r}: a part of the path is not a folder"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with its folder resolved (links in the folder followed),
    its last part kept as is (a link there is looked at, not followed)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) \
            or "\x00" in os.fspath(path):
        raise ConfigError(f"expected a path, got {path!r}")
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    if absolute.parent == absolute:
        raise ConfigError(f"cannot write to {str(absolute)!r}: give a file or folder inside it")
    return absolute.parent.resolve() / absolute.name


def _check_writable_folder(path: Path, *, create: bool) -> None:
    """The folder ``path`` (or, with ``create``, its nearest existing ancestor) must be
    a folder naslab can write in."""
    probe = path
    while create and _lstat(probe) is None and probe.parent != probe:
        probe = probe.parent
    info = _lstat(probe)
    if info is None:
        raise ConfigError(f"the folder {str(path)!r} does not exist; create it first")
    if not stat.S_ISDIR(os.stat(probe).st_mode):
        raise ConfigError(f"cannot write in {str(probe)!r}: it is {_what(info.st_mode)}, "
                          "not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in {str(probe)!r}: not writable (permissions or a "
                          "read-only file system)")


def checked_destination(path: str | os.PathLike[str], *, kind: Literal["file", "folder"],
                        force: bool = False, option: str = "--force") -> Path:
    """``path`` (absolute) if naslab may write a ``kind`` there, else ConfigError.

    Refused: a symbolic link (never followed nor replaced), anything but a regular
    file where a file goes and a folder where a folder goes (devices, FIFOs,
    sockets), an existing file or folder unless ``force`` (``option`` names
    the flag in the message), a place that is not writable. A file's folder must
    exist; a folder's missing parents are created when it is written.
    """
    dest = _absolute(path)
    shown = str(dest)
    info = _lstat(dest)
    if info is not None:
        mode = info.st_mode
        wanted = stat.S_ISREG if kind == "file" else stat.S_ISDIR
        if stat.S_ISLNK(mode):
            raise ConfigError(f"{shown!r} is a symbolic link; naslab never writes through or "
                              f"over a link: give the {kind}'s real path")
        if not wanted(mode):
            hint = "a file name such as out.jsonl" if kind == "file" else "a folder"
            raise ConfigError(f"{shown!r} is {_what(mode)}, not a {kind}; give {hint}")
        if not force:  # an existing folder too, even an empty one
            more = " and is not empty" if kind == "folder" and _non_empty(dest) else ""
            raise ConfigError(f"{shown!r} exists{more}; pass {option} to replace "
                              f"{'it' if kind == 'file' else 'the files naslab writes in it'}")
    _check_writable_folder(dest.parent, create=kind == "folder")
    return dest


def _non_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError as exc:
        raise ConfigError(f"cannot read the folder {str(folder)!r}: {exc.strerror or exc}"
                          ) from exc


def _umask_mode(base: int) -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return base & ~mask


def _recheck(dest: Path, kind: Literal["file", "folder"]) -> bool:
    """Just before the rename: whether something is at ``dest`` now, refusing anything
    other than a regular file (folder) that may have appeared since the check."""
    info = _lstat(dest)
    if info is None:
        return False
    wanted = stat.S_ISREG if kind == "file" else stat.S_ISDIR
    if not wanted(info.st_mode):
        raise ConfigError(f"{str(dest)!r} is now {_what(info.st_mode)}; not replaced")
    return True


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, force: bool = False,
                option: str = "--force") -> Iterator[Path]:
    """Yield a temporary file next to ``path`` to write; once the block ends it
    replaces ``path`` (checked with :func:`checked_destination`). On any error the
    temporary file is removed and ``path`` is unchanged; an ``OSError`` becomes
    StorageError."""
    dest = checked_destination(path, kind="file", force=force, option=option)
    try:
        # the temporary name keeps the suffix: writers that pick a format by it still can
        suffix = dest.suffix if dest.suffix[1:].isalnum() and len(dest.suffix) <= 8 else ""
        fd, name = tempfile.mkstemp(prefix=f".{dest.name[:100]}.", suffix=f".tmp{suffix}",
                                    dir=dest.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {str(dest)!r}: {exc.strerror or exc}") from exc
    tmp = Path(name)
    try:
        os.fchmod(fd, _umask_mode(0o666))
        os.close(fd)
        yield tmp
        _recheck(dest, "file")
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {str(dest)!r}: {exc.strerror or exc}; nothing "
                           "was written") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str], *, force: bool = False,
                  stale: Iterable[str] = (), option: str = "--force") -> Iterator[Path]:
    """Yield a temporary folder next to ``path`` to write files in; once the block
    ends it becomes ``path`` (checked with :func:`checked_destination`; missing
    parents are created). When ``path`` is an existing folder (``force``), each file
    written replaces the file of that name in it (never a link or a special file),
    and the files named in ``stale`` that were not written again are removed. On any
    error the temporary folder is removed and ``path`` is unchanged; an ``OSError``
    becomes StorageError."""
    dest = checked_destination(path, kind="folder", force=force, option=option)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name[:100]}.", suffix=".tmp",
                                    dir=dest.parent))
    except OSError as exc:
        raise StorageError(f"cannot write {str(dest)!r}: {exc.strerror or exc}") from exc
    try:
        os.chmod(tmp, _umask_mode(0o777))
        yield tmp
        if _recheck(dest, "folder"):
            _merge(tmp, dest, set(stale))
        else:
            os.rename(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot write {str(dest)!r}: {exc.strerror or exc}; nothing "
                           "was written") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _merge(tmp: Path, dest: Path, stale: set[str]) -> None:
    """Move the files of ``tmp`` into the existing folder ``dest`` (each checked
    first: only regular files are replaced), remove ``stale`` ones, drop ``tmp``."""
    written = sorted(p.name for p in tmp.iterdir())
    for name in [*written, *sorted(stale - set(written))]:
        info = _lstat(dest / name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{str(dest / name)!r} is {_what(info.st_mode)}; naslab replaces "
                              "only regular files: remove it or choose another folder")
    for name in written:
        os.replace(tmp / name, dest / name)
    for name in sorted(stale - set(written)):
        (dest / name).unlink(missing_ok=True)
    tmp.rmdir()


# --------------------------------------------------------------------------- reading


def contained(folder: str | os.PathLike[str], relative: Any, *, what: str = "file") -> Path:
    """The regular file ``relative`` names inside ``folder``, resolved (links
    followed); ConfigError if it is not a relative path, leads outside ``folder``
    (``..``, an absolute path, a link pointing out) or is not a regular file."""
    base = Path(folder).resolve()
    if not isinstance(relative, str) or not relative or "\x00" in relative \
            or os.path.isabs(relative) or relative.startswith("~"):
        raise ConfigError(f"the {what} path {relative!r} must be a file name relative to "
                          f"{str(base)!r}")
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise ConfigError(f"the {what} {relative!r} leads outside {str(base)!r} (to "
                          f"{str(target)!r}); refused")
    if not target.is_file():
        raise ConfigError(f"the {what} {relative!r} is not a file in {str(base)!r}")
    return target
