"""Code references: a component named by where its code lives.

A reference is ``path/to/file.py:Name`` (a Python file, loaded as a module of its
own) or ``package.module:Name`` (imported; the current folder is searched first, as
``python -m`` and uvicorn do). ``Name`` may be dotted (``module:Outer.Inner``). The
CLI takes them for ``--space`` and ``--task``; :class:`naslab.Study` takes them
wherever it takes a registered name.

Loading a reference runs the code it names, as ``python file.py`` would: give only
references to code you trust. A study stores the references it was made with (so
that ``naslab search --study NAME`` resumes it) together with the SHA-256 of the
source file (:func:`source_digest`); a resume that reads the reference from the
store refuses a file whose digest changed (:func:`check_digest`).

Modules loaded from a file are registered with cloudpickle (Ray's and the plain
package, where installed) as "pickle by value", so that Ray workers, which cannot
import a file by its path on another machine, receive the class itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from naslab.core.errors import ConfigError

__all__ = ["absolute_reference", "check_digest", "file_modules", "is_reference",
           "load_reference", "reference_of", "source_digest"]

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = _MODULE
#: Longest reference accepted (a path plus a name).
MAX_REFERENCE = 4096
#: Largest source file loaded from a path.
MAX_SOURCE_BYTES = 16 * 2**20

_FILE_MODULES: dict[str, ModuleType] = {}


def is_reference(text: Any) -> bool:
    """Whether ``text`` is written as a reference (it holds a ``:``) rather than a
    registered name."""
    return isinstance(text, str) and ":" in text


def _split(kind: str, ref: str) -> tuple[str, str]:
    if not isinstance(ref, str) or len(ref) > MAX_REFERENCE or "\x00" in ref:
        raise ConfigError(f"{kind} reference must be a string of at most {MAX_REFERENCE} "
                          "characters without NUL bytes")
    where, sep, name = ref.rpartition(":")
    if not sep or not where or not _ATTRIBUTE.fullmatch(name):
        raise ConfigError(
            f"{kind} reference {ref!r} is not 'path/to/file.py:Name' or 'package.module:Name' "
            "(Name: a Python identifier, dotted for a nested one)")
    return where, name


def _is_file_reference(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def _file_module(kind: str, where: str) -> ModuleType:
    path = Path(where).expanduser()
    if path.suffix != ".py":
        raise ConfigError(f"{kind} file {where!r} must be a Python file ending in .py")
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        raise ConfigError(f"{kind} file {where!r} does not exist") from None
    if not resolved.is_file():
        raise ConfigError(f"{kind} file {where!r} is not a regular file")
    if resolved.stat().st_size > MAX_SOURCE_BYTES:
        raise ConfigError(f"{kind} file {where!r} is larger than {MAX_SOURCE_BYTES} bytes")
    key = str(resolved)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    name = "naslab_user_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have one
        raise ConfigError(f"{kind} file {where!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ConfigError(f"{kind} file {where!r} failed to load: "
                          f"{type(exc).__name__}: {exc}") from exc
    _FILE_MODULES[key] = module
    _pickle_by_value(module)
    return module


def _pickle_by_value(module: ModuleType) -> None:
    """Have cloudpickle send ``module``'s objects by value (another process cannot
    import it by its made-up name): the plain package where installed, and Ray's copy
    where Ray is loaded (a Ray executor registers :func:`file_modules` when it starts)."""
    names = ["cloudpickle"] + (["ray.cloudpickle"] if "ray" in sys.modules else [])
    for name in names:
        try:
            importlib.import_module(name).register_pickle_by_value(module)
        except (ImportError, AttributeError, ValueError):
            continue


def file_modules() -> list[ModuleType]:
    """The modules loaded from files so far (an executor that ships work to other
    processes registers them for pickling by value)."""
    return list(_FILE_MODULES.values())


def _current_folder_on_path() -> None:
    """Search the current folder first for modules, as ``python -m`` does."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def _import_module(kind: str, where: str) -> ModuleType:
    if not _MODULE.fullmatch(where):
        raise ConfigError(f"{kind} module {where!r} is not a dotted Python module name "
                          "(or a path ending in .py)")
    _current_folder_on_path()
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{kind} module {where!r} cannot be imported: {exc} (is it "
                          "installed, or in the current folder?)") from exc
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ConfigError(f"{kind} module {where!r} failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc


def load_reference(kind: str, ref: str) -> Any:
    """The object that ``ref`` names; :class:`ConfigError` says what is wrong (not a
    reference, no such file or module, no such name, the code raised)."""
    where, name = _split(kind, ref)
    module = _file_module(kind, where) if _is_file_reference(where) else _import_module(
        kind, where)
    obj: Any = module
    for part in name.split("."):
        if part.startswith("__") or not hasattr(obj, part):
            raise ConfigError(f"{kind} reference {ref!r}: {where!r} has no {name!r}")
        obj = getattr(obj, part)
    return obj


def absolute_reference(ref: str) -> str:
    """``ref`` with a file path made absolute (so that it loads from any folder);
    a module reference as it is."""
    where, name = _split("reference", ref)
    if not _is_file_reference(where):
        return ref
    return f"{Path(where).expanduser().resolve()}:{name}"


def reference_of(obj: Any) -> str | None:
    """A reference that loads ``obj``'s class again: ``file.py:Name`` for a class
    loaded from a file, ``module:Name`` for an importable one; None for a class
    defined where it cannot be found again (``__main__``, a function's body)."""
    cls = obj if isinstance(obj, (type, FunctionType)) else type(obj)
    qualname = getattr(cls, "__qualname__", "")
    if "<locals>" in qualname:
        return None
    for path, module in _FILE_MODULES.items():
        if cls.__module__ == module.__name__:
            return f"{path}:{qualname}"
    if cls.__module__ in ("__main__", "builtins"):
        return None
    return f"{cls.__module__}:{qualname}"


def source_digest(ref: str) -> str | None:
    """SHA-256 of the source file behind ``ref`` (None when it has none, e.g. a
    built-in module)."""
    where, _ = _split("reference", ref)
    if _is_file_reference(where):
        path: Path | None = Path(where).expanduser()
    else:
        _current_folder_on_path()
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError):
            return None
        origin = getattr(spec, "origin", None)
        path = Path(origin) if origin and origin.endswith(".py") else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_digest(kind: str, ref: str, stored: str | None) -> None:
    """Refuse to load ``ref`` from a study's stored settings when its source file
    changed (or vanished) since the study was made."""
    if stored is None:
        return
    now = source_digest(ref)
    if now != stored:
        state = ("cannot be found from here (a module: run from the folder the study was "
                 "made in, or install it)" if now is None else "has changed")
        raise ConfigError(
            f"the {kind} code stored with this study ({ref}) {state} since the study was "
            f"made; give --{kind} {ref} again to use it as it is now")
