"""Export of a study's best architecture, and loading it back.

``export_best`` writes a folder:

- ``architecture.json``: space name and parameters, decisions, graph, canonical hash;
- ``trial.json``: study, task, fidelity, seed, final metrics, params, FLOPs, latency;
- ``weights.safetensors``: the trained weights (safetensors: loading runs no code),
  when the trial has weights (table benchmarks have none).

``load_exported`` rebuilds the space, the architecture and the ``torch.nn.Module``
with its weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from naslab.core.errors import ConfigError, NaslabError
from naslab.db.store import Store
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace
from naslab.search_spaces.registry import get_space


def export_best(store: Store, study: str, out_dir: str | Path) -> Path:
    """Write the best trial of ``study`` into ``out_dir``; returns the folder."""
    info = store.studies.require(study)
    best = store.trials.best(study, 1)
    if not best:
        raise NaslabError(f"study {study!r} has no completed trial to export")
    trial = best[0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = trial.architecture()
    (out / "architecture.json").write_text(
        json.dumps({**arch.to_json(), "space_config": info.space_config}, indent=2, default=str)
    )
    weights = store.trials.weights(trial.id)  # follows reused_from to the trained trial
    meta = {
        "study": info.name,
        "task": info.task_key,
        "trial_number": trial.number,
        "fidelity": trial.fidelity,
        "seed": trial.seed,
        "metrics": trial.metrics,
        "objective": info.objective,
        "objective_value": trial.objective_value,
        "params": trial.params,
        "flops": trial.flops,
        "latency_ms": trial.latency_ms,
        "model_io": info.config.get("model_io"),
        "weights": "weights.safetensors" if weights is not None else None,
    }
    (out / "trial.json").write_text(json.dumps(meta, indent=2, default=str))
    if weights is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "weights.safetensors"))
    return out


def load_exported(path: str | Path) -> tuple[SearchSpace, Architecture, Any]:
    """Rebuild ``(space, architecture, module)`` from an :func:`export_best` folder.

    The module has the trained weights loaded when the export holds them, and is in
    eval mode. Works for the built-in spaces; for a custom space, rebuild it yourself
    and use ``Architecture.from_json`` and ``safetensors.torch.load_file``.
    """
    folder = Path(path)
    try:
        arch_data = json.loads((folder / "architecture.json").read_text())
        meta = json.loads((folder / "trial.json").read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{folder} is not a naslab export (missing {exc.filename})") from exc
    space = get_space(arch_data["space"], **(arch_data.get("space_config") or {}))
    arch = Architecture.from_json(arch_data)
    io = meta.get("model_io")
    if not io:
        raise NaslabError("the export does not record the model's input shape and classes")
    module = space.build(arch, SimpleNamespace(**io))
    if meta.get("weights"):
        from safetensors.torch import load_file

        module.load_state_dict(load_file(str(folder / meta["weights"])))
    module.eval()
    return space, arch, module
