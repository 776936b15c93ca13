"""The dashboard's Jinja2 templates (autoescape on: every stored string is
HTML-escaped) and the filters they use."""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

__all__ = ["environment", "plotly_js", "render", "static_text"]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _duration(value: float | None) -> str:
    if value is None:
        return ""
    value = int(round(value))
    hours, rest = divmod(value, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _short_task(task_key: str) -> str:
    if task_key.startswith("train-") and "(" in task_key:
        return task_key[task_key.index("(") + 1:].split(";")[0]
    return task_key


def _embed(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` element (mark it ``|safe``: it
    is escaped for that place by :func:`~naslab.dashboard.params.embeddable_json`)."""
    from naslab.dashboard.params import embeddable_json

    return embeddable_json(value)


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment over ``naslab/dashboard/templates`` (autoescape on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("naslab.dashboard", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(fmt=_fmt, duration=_duration, short_task=_short_task, embed=_embed,
                       urlencode_dict=lambda d: urlencode(d))
    env.globals["urlencode"] = lambda **kw: urlencode({k: v for k, v in kw.items()
                                                       if v is not None})
    return env


def render(template: str, **context: Any) -> str:
    """A template rendered with ``context``."""
    context.setdefault("static", False)
    return str(environment().get_template(template).render(**context))


def static_text(name: str) -> str:
    """A file of ``naslab/dashboard/static`` as text."""
    return (resources.files("naslab.dashboard") / "static" / name).read_text("utf-8")


@functools.lru_cache(maxsize=1)
def plotly_path() -> Any:
    """The installed plotly package's ``plotly.min.js`` (never a CDN)."""
    return resources.files("plotly") / "package_data" / "plotly.min.js"


def plotly_js(inline: bool = False) -> str:
    """plotly.js as text; ``inline``: safe inside a ``<script>`` element (no
    ``</script``)."""
    text = plotly_path().read_text("utf-8")
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE) if inline else text
