"""Stores filled through the production path (the trial protocol), for tests that need
trials in particular states: a study from keyword settings, and trials claimed,
then finished, failed or left running, exactly as the search loop does it (on the
helpers of the Store contract suite, :mod:`naslab.testing.stores`)."""

from __future__ import annotations

from typing import Any

from naslab.db.protocol import ClaimOutcome
from naslab.db.records import StudyInfo, StudySpec
from naslab.db.store import Store
from naslab.search_spaces.architecture import Architecture
from naslab.testing.stores import context, start
from naslab.workers.evaluator import Result

__all__ = ["complete", "context", "fail", "make_study", "reuse", "start"]


def make_study(store: Store, name: str, **settings: Any) -> StudyInfo:
    """Create (or load) study ``name`` with ``settings`` (the fields of StudySpec)."""
    return store.studies.create_or_load(StudySpec(name=name, **settings))


def reuse(store: Store, info: StudyInfo, arch: Architecture, **options: Any) -> int:
    """Claim ``arch`` where an earlier evaluation exists; the id of the reused copy
    (fails the test unless REUSED)."""
    options.setdefault("reuse", True)
    claim = store.protocol.claim(context(info, **options), arch)
    assert claim.outcome is ClaimOutcome.REUSED, claim
    assert claim.trial_id is not None
    return claim.trial_id


def complete(store: Store, info: StudyInfo, arch: Architecture, result: Result,
             *, stopped: bool = False, **options: Any) -> int:
    """A trial of ``arch`` claimed and finished with ``result``; its id."""
    trial_id = start(store, info, arch, **options)
    store.protocol.finish(trial_id, result, objective=info.objective, stopped=stopped)
    return trial_id


def fail(store: Store, info: StudyInfo, arch: Architecture, error: str, **options: Any
         ) -> int:
    """A trial of ``arch`` claimed and failed with ``error``; its id."""
    trial_id = start(store, info, arch, **options)
    store.protocol.fail(trial_id, error)
    return trial_id
