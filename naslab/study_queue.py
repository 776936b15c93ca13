"""Architectures a user names to a study: :meth:`Study.enqueue
<naslab.study.Study.enqueue>` (evaluate these first) and :meth:`Study.evaluate
<naslab.study.Study.evaluate>` (evaluate this one now).

Both take an :class:`~naslab.search_spaces.architecture.Architecture` of the study's
space or a mapping of its decisions; :func:`as_architecture` checks either against
the space before anything is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from naslab.core.errors import ConfigError, InvalidArchitectureError, NaslabError
from naslab.db.protocol import ClaimOutcome
from naslab.db.records import TrialRecord
from naslab.loop import DONE_STATES, TrialLoop
from naslab.search_spaces.architecture import Architecture
from naslab.search_spaces.base import SearchSpace

if TYPE_CHECKING:
    from naslab.study import Study

__all__ = ["as_architecture", "evaluate_now"]

logger = logging.getLogger(__name__)


def as_architecture(space: SearchSpace, candidate: Any) -> Architecture:
    """``candidate`` (an :class:`Architecture` or a mapping of decisions) as an
    architecture of ``space``, built by ``space`` itself.

    Raises :class:`~naslab.core.errors.InvalidArchitectureError` naming the problem
    (another space, a decision missing, unknown or out of its domain, a graph that
    is not the one its decisions derive), or :class:`ConfigError` for anything else.
    """
    if isinstance(candidate, Architecture):
        space.validate(candidate)
        return space.from_decisions(dict(candidate.decisions))
    if isinstance(candidate, Mapping):
        bad = [k for k in candidate if not isinstance(k, str)]
        if bad:
            raise InvalidArchitectureError(
                f"{space.name}: decision names must be strings, got {bad[0]!r}")
        return space.from_decisions(dict(candidate))
    raise ConfigError(
        f"expected an Architecture of space {space.name!r} or a mapping of its decisions "
        f"(e.g. {{'name': value, ...}}), got {type(candidate).__name__}")


def evaluate_now(study: Study, arch: Architecture) -> TrialRecord:
    """Evaluate ``arch`` (an architecture of the study's space) as one trial of
    ``study`` now, store it, tell the searcher, and return its record.

    An architecture the study already holds is not evaluated again: its stored
    trial is returned (also a failed one). One evaluated by another study on the
    same space, task and fidelity is reused. A failed evaluation returns a ``failed``
    record (it does not raise).

    Raises :class:`ConfigError` when the study's budget is taken (nothing is
    stored), and :class:`NaslabError` when another driver is evaluating the same
    architecture in this study right now.
    """
    info = study.prepare()
    loop = TrialLoop(study, info, queued=[arch], only_queued=True)
    loop.run()
    claim = loop.queued_claims.get(arch.hash)
    if claim is not None and claim.outcome is ClaimOutcome.BUSY:
        raise NaslabError(
            f"another driver is evaluating this architecture in study {study.name!r} "
            f"(trial {claim.number}); its result is stored there when it finishes")
    if claim is not None and claim.trial_id is not None and claim.outcome in (
            ClaimOutcome.NEW, ClaimOutcome.REUSED, ClaimOutcome.KNOWN):
        record = study.store.trials.get(claim.trial_id)
        assert record is not None
        return record
    held = [t for t in study.store.trials.list(info.id, DONE_STATES) if t.arch_hash == arch.hash]
    if held:
        logger.info("study %s: architecture %s already evaluated (trial %d), not again",
                    study.name, arch.hash[:12], held[-1].number)
        return held[-1]
    raise ConfigError(
        f"study {study.name!r} has used its budget of {study.budget} trials, so "
        f"evaluate() stores nothing; raise the budget first (study.budget = "
        f"{study.budget + 1}) to evaluate one more")
