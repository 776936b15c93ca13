"""The dashboard's query parameters, checked against whitelists and ranges before
anything reaches a query; and JSON made safe to embed in an HTML page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from naslab.core.errors import ConfigError
from naslab.db.dashboard_queries import SORT_COLUMNS
from naslab.db.models import TRIAL_STATES

__all__ = [
    "MAX_CURVES",
    "MAX_PAGE",
    "PER_PAGE",
    "TableParams",
    "embeddable_json",
    "parse_curves",
    "parse_number",
    "parse_table",
    "required",
]

#: Rows per page of the trials table (the only sizes accepted).
PER_PAGE: tuple[int, ...] = (25, 50, 100, 200)
#: The largest page number accepted.
MAX_PAGE = 1_000_000
#: The most learning curves drawn at once.
MAX_CURVES = 20


@dataclass(frozen=True)
class TableParams:
    """The trials table's page, size, sort key, direction and state filter."""

    page: int = 1
    per_page: int = 50
    sort: str = "number"
    descending: bool = False
    state: str | None = None

    def query(self, **changes: Any) -> dict[str, str]:
        """These parameters (with ``changes``) as query-string values."""
        values = {"page": self.page, "per_page": self.per_page, "sort": self.sort,
                  "dir": "desc" if self.descending else "asc", "state": self.state or ""}
        values.update({("dir" if k == "descending" else k): v for k, v in changes.items()})
        if isinstance(values["dir"], bool):
            values["dir"] = "desc" if values["dir"] else "asc"
        return {k: str(v) for k, v in values.items() if v not in ("", None)}


def required(params: Mapping[str, str], key: str) -> str:
    """A parameter that must be given and not be empty."""
    value = params.get(key)
    if value is None or value == "":
        raise ConfigError(f"the query parameter {key!r} is required")
    return value


def parse_number(raw: str | None, what: str, *, minimum: int = 0, maximum: int = MAX_PAGE,
                 default: int | None = None) -> int:
    """A decimal integer in [minimum, maximum] (``default`` when not given)."""
    if raw is None or raw == "":
        if default is None:
            raise ConfigError(f"the query parameter {what!r} is required")
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ConfigError(f"{what} must be a whole number from {minimum} to {maximum}, "
                          f"got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ConfigError(f"{what} must be from {minimum} to {maximum}, got {value}")
    return value


def parse_table(params: Mapping[str, str]) -> TableParams:
    """The trials table's parameters (``page``, ``per_page``, ``sort``, ``dir``,
    ``state``), each checked against its whitelist or range."""
    sort = params.get("sort") or "number"
    if sort not in SORT_COLUMNS:
        raise ConfigError(f"unknown sort column {sort[:40]!r}; use one of "
                          + ", ".join(SORT_COLUMNS))
    direction = params.get("dir") or "asc"
    if direction not in ("asc", "desc"):
        raise ConfigError(f"dir must be asc or desc, got {direction[:40]!r}")
    state = params.get("state") or None
    if state is not None and state not in TRIAL_STATES:
        raise ConfigError(f"unknown trial state {state[:40]!r}; use one of "
                          + ", ".join(TRIAL_STATES))
    per_page = parse_number(params.get("per_page"), "per_page", minimum=1, maximum=200,
                            default=50)
    if per_page not in PER_PAGE:
        raise ConfigError(f"per_page must be one of {', '.join(map(str, PER_PAGE))}")
    page = parse_number(params.get("page"), "page", minimum=1, default=1)
    return TableParams(page, per_page, sort, direction == "desc", state)


def parse_curves(raw: str | None) -> list[int]:
    """``"3,7,12"`` -> trial numbers whose learning curves to draw (at most
    :data:`MAX_CURVES`)."""
    if not raw:
        return []
    parts = raw.split(",")
    if len(parts) > MAX_CURVES:
        raise ConfigError(f"at most {MAX_CURVES} learning curves at once")
    return sorted({parse_number(p.strip(), "curves", minimum=0) for p in parts})


def embeddable_json(value: Any) -> str:
    """``value`` as JSON that can sit inside ``<script type="application/json">`` (or
    an HTML attribute): ``<``, ``>``, ``&`` and the JavaScript line separators are
    written as escapes, so stored text such as ``</script>`` cannot end the element."""
    from plotly.io.json import to_json_plotly

    text = to_json_plotly(value)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text
