"""Names to components: one registry style and the one resolver.

Each kind of component (search space, searcher, predictor, scheduler, task, ...)
has one :class:`Registry`, defined by the package that owns the kind
(``naslab.searchers.registry.SEARCHERS``, ...). An entry maps a name to a factory
(a class or a function), given as the object itself or as ``"module:attribute"``
so that listing names imports nothing heavy, plus fixed keyword options and free
metadata. Users add their own entries with :meth:`Registry.register`.

:func:`resolve` turns "a name or an object" into an object, as PyG's
``nn/resolver.py`` does: an instance of the kind's base class is returned as it is;
a name is looked up (an unknown one raises
:class:`~naslab.core.errors.UnknownNameError` listing the choices) and its factory
called with the options (options it does not accept raise
:class:`~naslab.core.errors.ConfigError` listing those it does).

The ground floor names no higher module: the registry of a kind is found because
its module registered itself here on import, or because the application declared
which module provides it (:func:`declare`, done by ``naslab/__init__.py``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from naslab.core.errors import ConfigError, NaslabError, UnknownNameError

__all__ = ["Entry", "Registry", "build", "declare", "registry", "resolve"]

_REGISTRIES: dict[str, Registry] = {}
_PROVIDERS: dict[str, str] = {}


@dataclass(frozen=True)
class Entry:
    """One registered name: its factory (or ``"module:attribute"``), fixed options and
    metadata."""

    name: str
    target: Callable[..., Any] | str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """The factory, importing its module if it was given by path."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """The named implementations of one kind of component.

    Args:
        kind: what the entries are, as error messages say it (``"searcher"``).
        base: the kind's base class: :meth:`resolve` returns its instances as they
            are, and checks that factories build one.
    """

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry] = {}
        _REGISTRIES[kind] = self

    def register(
        self,
        name: str,
        target: Callable[..., Any] | str,
        *,
        defaults: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        """Add ``name``: ``target`` is a class or function, or ``"module:attribute"``;
        ``defaults`` are options always passed to it; ``info`` is free metadata.
        A name already taken is refused unless ``replace``."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered; pass replace=True "
                              "to replace it")
        if not (callable(target) or (isinstance(target, str) and ":" in target)):
            raise ConfigError(f"a {self.kind} must be registered as a class, a function or "
                              f"'module:attribute', got {target!r}")
        self._entries[name] = Entry(name, target, dict(defaults or {}), dict(info or {}))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (UnknownNameError if it is not registered)."""
        self.entry(name)
        del self._entries[name]

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; :class:`UnknownNameError` lists the choices."""
        if not isinstance(name, str) or name not in self._entries:
            raise UnknownNameError(self.kind, str(name), self._entries)
        return self._entries[name]

    def load(self, name: str) -> Callable[..., Any]:
        """The factory behind ``name`` (imported on first use)."""
        return self.entry(name).load()

    def create(self, name: str, /, **options: Any) -> Any:
        """A new component ``name`` built with its fixed options and ``options``."""
        entry = self.entry(name)
        made = build(self.kind, name, entry.load(), {**entry.defaults, **options})
        if self.base is not None and not isinstance(made, self.base):
            raise ConfigError(f"{self.kind} {name!r} built a {type(made).__name__}, not a "
                              f"{self.base.__name__}")
        return made

    def resolve(self, name_or_object: Any, /, **options: Any) -> Any:
        """``name_or_object`` itself if it is an instance of :attr:`base` (then no
        options may be given), else :meth:`create` of that name."""
        if self.base is not None and isinstance(name_or_object, self.base):
            if options:
                raise ConfigError(f"options ({', '.join(sorted(options))}) apply to a "
                                  f"{self.kind} given by name, not to a ready one")
            return name_or_object
        if not isinstance(name_or_object, str):
            expected = f"a {self.base.__name__} or " if self.base is not None else ""
            raise ConfigError(f"a {self.kind} must be {expected}one of the names "
                              f"{', '.join(self._entries)}; got {type(name_or_object).__name__}")
        return self.create(name_or_object, **options)


def build(kind: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]
          ) -> Any:
    """``factory(**options)``: options it does not take are refused (ConfigError listing
    those it does), as are the TypeError and ValueError it raises; ``kind`` and ``name``
    say what is built in the messages."""
    _check_signature(kind, name, factory, options)
    try:
        return factory(**options)
    except NaslabError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}") from exc


def _check_signature(kind: str, name: str, factory: Callable[..., Any],
                     kwargs: Mapping[str, Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}; it accepts: "
                          f"{', '.join(accepted) or 'no options'}") from None


def declare(kind: str, module: str) -> None:
    """Say which module defines (and fills) the registry of ``kind``; it is imported
    the first time :func:`registry` asks for that kind."""
    _PROVIDERS[kind] = module


def registry(kind: str) -> Registry:
    """The registry of ``kind``; :class:`UnknownNameError` lists the known kinds."""
    if kind not in _REGISTRIES and kind in _PROVIDERS:
        importlib.import_module(_PROVIDERS[kind])
    if kind not in _REGISTRIES:
        raise UnknownNameError("kind of component", kind, {*_REGISTRIES, *_PROVIDERS})
    return _REGISTRIES[kind]


def resolve(kind: str, name_or_object: Any, /, **options: Any) -> Any:
    """A component of ``kind`` from a name (built with ``options``) or a ready object:
    ``resolve("searcher", "evolution", space=space, seed=0)``."""
    return registry(kind).resolve(name_or_object, **options)
