"""Export of a study's best architecture (or any of its trials), and loading it back.

``export_best`` (or ``export_trial``, for a trial given by number) writes a folder:

- ``architecture.json``: space name and parameters, decisions, graph, canonical hash;
- ``trial.json``: study, task, trial number and state, fidelity, seed, final metrics,
  params, FLOPs, latency, and the weights file's name and SHA-256;
- ``weights.safetensors``: the trained weights (safetensors: loading runs no code),
  when the trial has weights (table benchmarks have none).

The folder is written next to its destination under a temporary name and renamed
into place once complete: a failed export (a full disk) leaves nothing half-written.
An existing folder is refused unless ``force``; links, devices and other special
files are never written through or replaced (:mod:`naslab.core.paths`).

``load_exported`` rebuilds the space, the architecture and the ``torch.nn.Module``
with its weights; it reads only files inside the export folder, checks the weights'
SHA-256 and refuses weights that are not finite.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from naslab.core.errors import ConfigError, NaslabError
from naslab.core.paths import atomic_folder, contained, safe_file_name, sha256_file
from naslab.db.store import Store
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.registry import get_space

__all__ = ["EXPORTABLE_STATES", "EXPORTS_FOLDER", "WEIGHTS_FILE", "default_export_folder",
           "export_best", "export_trial", "load_exported"]

#: Where ``naslab export`` writes when no folder is given (one subfolder per study).
EXPORTS_FOLDER = Path("naslab-exports")
#: The weights file of an export.
WEIGHTS_FILE = "weights.safetensors"
#: The states of a trial that can be exported: finished, or stopped early by a
#: scheduler (its metrics are those of the epochs it reached).
EXPORTABLE_STATES = ("complete", "stopped")


def default_export_folder(study: str, trial: int | None = None) -> Path:
    """``naslab-exports/<study>`` (the best trial), or ``naslab-exports/<study>-trialN``
    for trial ``N``. A study name that is not a safe file name (stored before names
    were checked) is mapped to one: never a path outside the folder."""
    name = safe_file_name(study)
    if trial is not None:
        if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
            raise ConfigError(f"a trial number is an integer >= 0, got {trial!r}")
        name = f"{name}-trial{trial}"
    folder = EXPORTS_FOLDER / name
    if folder.parent != EXPORTS_FOLDER:  # safe_file_name never has separators
        raise ConfigError(f"cannot name an export folder after study {study!r}")
    return folder


def export_best(store: Store, study: str, out_dir: str | Path | None = None, *,
                force: bool = False) -> Path:
    """Write the best trial of ``study`` into ``out_dir`` (default:
    :func:`default_export_folder`); returns the folder.

    Raises:
        ConfigError: an unknown study, or ``out_dir`` is not a folder naslab may write
            (an existing non-empty folder without ``force``, a file, a link, a device).
        NaslabError: the study has no completed trial, or its weights are not finite.
        StorageError: the folder could not be written (nothing is left behind).
    """
    return export_trial(store, study, None, out_dir, force=force)


def _chosen_trial(store: Store, study: str, number: int | None) -> Any:
    """The best trial (``number`` None) or trial ``number`` of ``study``, which must
    be exportable."""
    if number is None:
        best = store.trials.best(study, 1)
        if not best:
            raise NaslabError(f"study {study!r} has no completed trial to export")
        return best[0]
    trial = store.trials.get(store.studies.trial_id(study, number))
    if trial is None:  # deleted in between
        raise NaslabError(f"trial {number} of study {study!r} is gone")
    if trial.state not in EXPORTABLE_STATES:
        lines = (trial.error or "").strip().splitlines()
        why = f" (error: {lines[0][:200]!r})" if lines else ""  # repr: no control characters
        raise NaslabError(
            f"trial {number} of study {study!r} is {trial.state}{why}; only a "
            f"{' or '.join(EXPORTABLE_STATES)} trial has a model to export")
    return trial


def export_trial(store: Store, study: str, number: int | None = None,
                 out_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Write trial ``number`` of ``study`` (None: its best trial) into ``out_dir``
    (default: :func:`default_export_folder`); returns the folder.

    Raises:
        ConfigError: an unknown study or trial number, or ``out_dir`` is not a folder
            naslab may write (see :func:`export_best`).
        NaslabError: the trial is not complete or stopped (failed, running,
            interrupted), the study has no completed trial (``number`` None), or the
            weights are not finite.
        StorageError: the folder could not be written (nothing is left behind).
    """
    info = store.studies.require(study)
    trial = _chosen_trial(store, study, number)
    out = Path(out_dir) if out_dir is not None else default_export_folder(info.name, number)
    arch = trial.architecture()
    weights = store.trials.weights(trial.id)  # follows reused_from to the trained trial
    if weights is not None:
        _check_finite(weights, f"the weights of trial {trial.number} of study {study!r}")
    meta = {
        "study": info.name,
        "task": info.task_key,
        "trial_number": trial.number,
        "state": trial.state,
        "fidelity": trial.fidelity,
        "seed": trial.seed,
        "metrics": trial.metrics,
        "objective": info.objective,
        "objective_value": trial.objective_value,
        "params": trial.params,
        "flops": trial.flops,
        "latency_ms": trial.latency_ms,
        "model_io": info.config.get("model_io"),
        "weights": WEIGHTS_FILE if weights is not None else None,
        "weights_sha256": None,
    }
    with atomic_folder(out, force=force, stale=[WEIGHTS_FILE]) as tmp:
        (tmp / "architecture.json").write_text(
            json.dumps({**arch.to_json(), "space_config": info.space_config}, indent=2,
                       default=str))
        if weights is not None:
            from safetensors.torch import save

            data = save({k: v.contiguous() for k, v in weights.items()})
            (tmp / WEIGHTS_FILE).write_bytes(data)  # an OSError (a full disk) leaves nothing
            meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
        (tmp / "trial.json").write_text(json.dumps(meta, indent=2, default=str))
    return out


def _check_finite(weights: Mapping[str, Any], what: str) -> None:
    """NaslabError naming the first floating-point entry with a NaN or infinity."""
    import torch

    for key, value in weights.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()) \
                and not bool(torch.isfinite(value).all()):
            raise NaslabError(f"{what} are not finite (entry {key!r} holds NaN or infinity); "
                              "refused")


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    path = contained(folder, name, what=name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{str(path)!r} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object")
    return data


def _load_weights(folder: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The export's weights, from a file inside ``folder`` whose SHA-256 (when
    recorded; exports made before naslab recorded it have none) matches."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = contained(folder, meta["weights"], what="weights file")
    expected = meta.get("weights_sha256")
    if expected is not None:
        if not isinstance(expected, str) or len(expected) != 64:
            raise ConfigError(f"trial.json's weights_sha256 {expected!r} is not a SHA-256 "
                              "(64 hex digits)")
        found = sha256_file(path)
        if found != expected.lower():
            raise ConfigError(f"the weights file {str(path)!r} was changed or corrupted: its "
                              f"SHA-256 is {found}, trial.json records {expected}; refused")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"{str(path)!r} is not a safetensors file: {exc}") from exc
    _check_finite(weights, f"the weights in {str(path)!r}")
    return weights


def load_exported(path: str | Path) -> tuple[SearchSpace, Architecture, Any]:
    """Rebuild ``(space, architecture, module)`` from an :func:`export_best` folder.

    The module has the trained weights loaded when the export holds them, and is in
    eval mode. Only files inside the folder are read (a ``weights`` entry that is
    absolute, uses ``..`` or is a link pointing out is refused); the weights must
    match the SHA-256 ``trial.json`` records and be finite; the architecture must be
    the one its decisions derive. Works for the built-in spaces; for a custom space,
    rebuild it yourself and use ``Architecture.from_json`` and
    ``safetensors.torch.load_file``.

    Raises:
        ConfigError: not an export folder, or one of the checks above failed.
        NaslabError: the export has no model input shape (a table benchmark).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a naslab export folder")
    for name in ("architecture.json", "trial.json"):
        if not (folder / name).exists():
            raise ConfigError(f"{str(folder)!r} is not a naslab export (missing {name})")
    arch_data = _read_json(folder, "architecture.json")
    meta = _read_json(folder, "trial.json")
    space_config = arch_data.get("space_config") or {}
    if not isinstance(space_config, dict) or not isinstance(arch_data.get("space"), str):
        raise ConfigError("architecture.json must name the space and its parameters")
    space = get_space(arch_data["space"], **space_config)
    arch = Architecture.from_json(arch_data)
    space.validate(arch)
    io = meta.get("model_io")
    if not io:
        raise NaslabError("the export does not record the model's input shape and classes")
    if not isinstance(io, dict):
        raise ConfigError(f"trial.json's model_io must be an object, got {io!r}")
    weights = _load_weights(folder, meta) if meta.get("weights") is not None else None
    module = space.build(arch, SimpleNamespace(**io))
    if weights is not None:
        try:
            module.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "mismatch"
            raise ConfigError(f"the exported weights do not fit the architecture: {first}"
                              ) from exc
    module.eval()
    return space, arch, module

