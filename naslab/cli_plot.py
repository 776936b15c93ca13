"""``naslab plot curves|anytime``: figures of any stored study.

Both write one image file (PNG unless its suffix names another format matplotlib
writes): a new file, or an existing regular file with ``--force``; never through a
link, onto a device or into a folder that does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from naslab.cli_common import Storage, console, open_store, option, parse_list
from naslab.core.errors import ConfigError
from naslab.core.validation import check_int

__all__ = ["plot_app"]

plot_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                       help="Figures of a stored study: learning curves, anytime curve.")

#: Trials one learning-curve figure draws at most.
MAX_TRIALS = 100

StudyName = Annotated[str, option("Study name.")]
Force = Annotated[bool, option("Replace an existing --out file.", "--force")]


def _destination(out: Path, force: bool) -> Path:
    """``out`` (``.png`` added when it has no suffix and does not exist), checked
    before any work: refused if it is a link, a device, a folder, in a missing
    folder, an existing file without ``--force``, or a format matplotlib does not
    write."""
    from naslab.core.paths import checked_destination
    from naslab.plots import check_figure_format

    if out.name.endswith("."):
        raise ConfigError(f"--out {str(out)!r} ends with a dot; give a suffix naming the "
                          "format, e.g. .png")
    out = out if out.suffix or os.path.lexists(out) else out.with_suffix(".png")
    checked_destination(out, kind="file", force=force)
    if not out.suffix:
        raise ConfigError(f"--out {str(out)!r} needs a suffix naming the format, e.g. .png")
    return check_figure_format(out)


def _trial_numbers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    numbers = parse_list(text, "--trials", int)
    for n in numbers:
        check_int("a trial number of --trials", n, minimum=0)
    if len(set(numbers)) > MAX_TRIALS:
        raise ConfigError(f"--trials names {len(set(numbers))} trials; one figure draws at "
                          f"most {MAX_TRIALS}")
    return numbers


@plot_app.command("curves")
def curves(
    study: StudyName,
    out: Annotated[Path, option("Image file to write (PNG; .png added without a suffix).")
                   ] = Path("curves.png"),
    trials: Annotated[str | None, option(
        "Trial numbers to draw, comma-separated, e.g. 1,2,3.")] = None,
    top: Annotated[int | None, option(
        "Draw the K best complete trials (default: 10, when --trials is not given).")] = None,
    metric: Annotated[str, option("The per-epoch metric to draw.")] = "val_accuracy",
    force: Force = False,
    storage: Storage = None,
) -> None:
    """Learning curves (a metric per epoch) of chosen trials of a study."""
    from naslab.core.paths import atomic_file
    from naslab.plots import choose_curves, plot_learning_curves

    out = _destination(out, force)
    numbers = _trial_numbers(trials)
    if top is not None:
        check_int("--top", top, minimum=1, maximum=MAX_TRIALS)
    with open_store(storage) as store:
        chosen = choose_curves(store, study, metric, numbers, top)
    with atomic_file(out, force=force) as tmp:
        plot_learning_curves(chosen, metric, f"{study}: {metric} per epoch", tmp)
    epochs = max(max(steps) for _, steps in chosen)
    console.print(f"wrote {out}: {metric} of {len(chosen)} trials "
                  f"({', '.join(str(n) for n, _ in chosen)}), up to epoch {epochs}",
                  markup=False, highlight=False, soft_wrap=True)


@plot_app.command("anytime")
def anytime(
    study: StudyName,
    out: Annotated[Path, option("Image file to write (PNG; .png added without a suffix).")
                   ] = Path("anytime.png"),
    force: Force = False,
    storage: Storage = None,
) -> None:
    """Best objective so far against finished trials and against wall time (for a
    multi-objective study: the hypervolume so far)."""
    from naslab.core.paths import atomic_file
    from naslab.plots import anytime_curve, plot_anytime

    out = _destination(out, force)
    with open_store(storage) as store:
        curve = anytime_curve(store, study)
    with atomic_file(out, force=force) as tmp:
        plot_anytime(curve, study, tmp)
    final = curve.best[-1]
    console.print(f"wrote {out}: {curve.label} after {len(curve.best)} finished trials: "
                  f"{final:.4f}", markup=False, highlight=False, soft_wrap=True)
