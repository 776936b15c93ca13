"""Driver ids, liveness and heartbeats (:mod:`naslab.core.drivers`), and the store's
claims between drivers, on every backend."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from naslab.core.drivers import Heartbeat, driver_alive, driver_id, parse_driver
from naslab.db import Store
from naslab.db.models import utcnow
from naslab.db.protocol import ClaimContext, ClaimOutcome
from tests.toy import make_arch, new_study, result


def test_driver_ids_and_liveness():
    me = driver_id()
    host, pid, start = parse_driver(me)
    assert driver_alive(me, None)
    assert not driver_alive(f"{host}/{pid}/{start + 60_000}", None)  # pid reused
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not driver_alive(f"{host}/{proc.pid}/0", utcnow())  # gone, whatever its beat
    now = utcnow()
    assert driver_alive("elsewhere/1/1", now - timedelta(seconds=10), now=now)
    assert not driver_alive("elsewhere/1/1", now - timedelta(seconds=600), now=now)
    assert not driver_alive("elsewhere/1/1", None)
    assert not driver_alive(None, now) and not driver_alive("", now)
    assert parse_driver("no-slashes") is None


def _running(store: Store, study, op: str, driver: str | None) -> int:
    return _start(store, study, make_arch((op,)), driver)


def _start(store: Store, study, arch, driver: str | None = None) -> int:
    """A new running trial of ``arch`` claimed by ``driver``."""
    claim = store.protocol.claim(ClaimContext.of(study, driver=driver, worker="w", budget=None),
                                 arch)
    assert claim.outcome is ClaimOutcome.NEW, claim
    return claim.trial_id


def _make_stale(url: str, trial_id: int) -> None:
    """Age a trial's heartbeat by ten minutes (a remote driver gone silent)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE naslab_trials SET heartbeat_at = :t WHERE id = :i"),
                     {"t": utcnow() - timedelta(minutes=10), "i": trial_id})
    engine.dispose()


def test_only_dead_drivers_trials_are_interrupted(db_url):
    with Store(db_url) as store:
        study = new_study(store)
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        host = parse_driver(driver_id())[0]
        mine = _running(store, study, "a", driver_id())
        gone = _running(store, study, "b", f"{host}/{proc.pid}/0")
        remote_fresh = _running(store, study, "c", "other-host/7/7")
        remote_stale = _running(store, study, "d", "other-host/8/8")
        legacy = _running(store, study, "e", None)
        _make_stale(db_url, remote_stale)
        assert store.protocol.interrupt_abandoned(study.id) == 3
        states = {t.id: t.state for t in store.trials.list(study.id)}
        assert states == {mine: "running", gone: "interrupted", remote_fresh: "running",
                          remote_stale: "interrupted", legacy: "interrupted"}
        # an interrupted trial released its claim: the architecture can run again
        again = _running(store, study, "b", driver_id())
        assert store.protocol.interrupt_running(study.id, driver="other-host/7/7") == 1
        assert {t.id: t.state for t in store.trials.list(study.id, ["running"])} == {
            mine: "running", again: "running"}


def test_heartbeats_keep_a_remote_driver_alive(db_url):
    with Store(db_url) as store:
        study = new_study(store)
        tid = _running(store, study, "a", "remote/1/1")
        old = store.trials.get(tid)
        beats = []
        hb = Heartbeat(lambda: beats.append(store.protocol.heartbeat(study.id, "remote/1/1")),
                       every_s=0.05).start()
        time.sleep(0.4)
        hb.stop()
        assert len(beats) >= 3 and all(b == 1 for b in beats)
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            beat = conn.execute(sa.text("SELECT heartbeat_at FROM naslab_trials WHERE id = :i"),
                                {"i": tid}).scalar()
        engine.dispose()
        assert beat is not None and old.started_at is not None
        assert store.protocol.interrupt_abandoned(study.id, lease_s=60) == 0
        time.sleep(0.3)
        assert store.protocol.interrupt_abandoned(study.id, lease_s=0.2) == 1


def test_claim_outcomes(db_url):
    with Store(db_url) as store:
        study = new_study(store, budget=3)
        a, b, c, d = (make_arch((op,)) for op in "abcd")
        ctx = ClaimContext.of(study, driver="d1")

        def claim(arch, **kw):
            return store.protocol.claim(ctx, arch, **kw)

        first = claim(a)
        assert first.outcome is ClaimOutcome.NEW and first.number == 0
        busy = claim(a)
        assert busy.outcome is ClaimOutcome.BUSY and busy.trial_id == first.trial_id
        store.protocol.finish(first.trial_id, result(0.8), objective="val_accuracy")
        known = claim(a)
        assert (known.outcome, known.trial_id, known.value) == (
            ClaimOutcome.KNOWN, first.trial_id, 0.8)
        assert known.metrics["val_accuracy"] == 0.8
        # a study holds each architecture once: its own result is never copied again
        again = claim(a)
        assert (again.outcome, again.trial_id) == (ClaimOutcome.KNOWN, first.trial_id)
        assert claim(b).outcome is ClaimOutcome.NEW
        assert claim(c).outcome is ClaimOutcome.NEW
        assert claim(d).outcome is ClaimOutcome.FULL  # 1 finished + 2 running = budget 3
        assert store.trials.count(study.id) == 3
        store.protocol.interrupt_running(study.id)
        assert claim(d).outcome is ClaimOutcome.NEW  # the interrupted ones no longer count
        # the study has a complete evaluation of a: never a second one (no budget here)
        unbounded = ClaimContext.of(study, driver="d1", budget=None)
        assert store.protocol.claim(unbounded, a).outcome is ClaimOutcome.KNOWN


def test_batch_commits_together_and_rolls_back_together(db_url):
    with Store(db_url) as store:
        study = new_study(store, budget=100)
        ctx = ClaimContext.of(study, driver="d")

        def record(op: str, value: float) -> None:
            claim = store.protocol.claim(ctx, make_arch((op,)))
            store.protocol.finish(claim.trial_id, result(value), objective="val_accuracy")

        with store.batch():
            record("a", 0.1)
            record("b", 0.2)
            bad = store.protocol.claim(ctx, make_arch(("bad",)))
            with pytest.raises(Exception, match="no 'val_accuracy' metric"):
                store.protocol.finish(bad.trial_id, result(0.0).__class__(metrics={"x": 1.0}),
                                      objective="val_accuracy")
            store.protocol.fail(bad.trial_id, "refused")
            record("c", 0.3)  # a refused step leaves the batch's other writes in
        assert [t.objective_value for t in store.trials.list(study.id, ["complete"])] == [
            0.1, 0.2, 0.3]
        assert [t.state for t in store.trials.list(study.id)] == [
            "complete", "complete", "failed", "complete"]
        with pytest.raises(RuntimeError), store.batch():
            record("d", 0.4)
            raise RuntimeError("crash inside the batch")
        assert store.trials.count(study.id) == 4


def _taken_over(store: Store, db_url: str):
    """A study, a trial of a remote driver gone silent (interrupted), and the claim of
    the same architecture that another driver made since."""
    study = new_study(store)
    arch = make_arch(("a",))
    late = _start(store, study, arch, "remote/1/1")
    _make_stale(db_url, late)
    assert store.protocol.interrupt_abandoned(study.id) == 1
    again = store.protocol.claim(ClaimContext.of(study, driver="d2"), arch)
    assert again.outcome is ClaimOutcome.NEW
    return study, late, again


def test_a_late_result_after_the_claim_passed_on_is_kept_not_duplicated(db_url):
    """A driver taken for dead (stale heartbeat) finishes its trial after another
    driver claimed the architecture again: the late result is stored with its trial,
    which stays interrupted, and the study still has one evaluation of it."""
    with Store(db_url) as store:
        study, late, again = _taken_over(store, db_url)
        store.protocol.finish(late, result(0.7), objective="val_accuracy")  # no error
        kept = store.trials.get(late)
        assert kept.state == "interrupted" and kept.objective_value == 0.7
        assert f"trial {again.number} of the study evaluates" in kept.error
        store.protocol.finish(again.trial_id, result(0.71), objective="val_accuracy")
        assert [t.id for t in store.trials.list(study.id, ["complete"])] == [again.trial_id]
        # without a successor, an interrupted trial that finishes late is complete
        other = _start(store, study, make_arch(("b",)))
        store.protocol.interrupt_running(study.id)
        store.protocol.finish(other, result(0.5), objective="val_accuracy")
        assert store.trials.get(other).state == "complete"


def test_a_late_result_delivered_twice_replaces_the_first(db_url):
    """An interrupted trial's late result may arrive twice: the second replaces the
    first (final metrics and weights), nothing is duplicated."""
    import torch

    with Store(db_url) as store:
        _, late, _ = _taken_over(store, db_url)
        for value in (0.7, 0.75):
            weights = {"w": torch.full((2,), value)}
            store.protocol.finish(late, result(value, weights=weights),
                                  objective="val_accuracy")
        kept = store.trials.get(late)
        assert kept.state == "interrupted" and kept.metrics["val_accuracy"] == 0.75
        rows = store.sql.query(
            f"SELECT COUNT(*) FROM naslab_metrics WHERE trial_id = {late} AND step IS NULL")
        assert rows[1][0][0] == len(result(0.75).metrics)
        assert torch.equal(store.trials.weights(late)["w"], torch.full((2,), 0.75))


def test_a_batch_belongs_to_its_thread(tmp_path):
    """Another thread's writes do not join this thread's batch: on SQLite they wait
    for its lock (and give up after the busy timeout), they never commit inside it."""
    import threading

    from naslab.core.errors import StorageError

    with Store(f"sqlite:///{tmp_path / 'b.db'}", busy_timeout_s=0.3) as store:
        errors: list[BaseException] = []
        with store.batch():
            new_study(store, "mine")

            def elsewhere() -> None:
                try:
                    new_study(store, "theirs")
                except StorageError as exc:
                    errors.append(exc)

            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
        assert len(errors) == 1 and "locked" in str(errors[0])
        assert [s.name for s in store.studies.summaries()] == ["mine"]


def test_reports_take_integral_float_steps(db_url):
    with Store(db_url) as store:
        study = new_study(store)
        tid = _start(store, study, make_arch(("a",)))
        store.protocol.report(tid, 2.0, {"val_accuracy": 0.5})
        assert store.trials.learning_curve(tid) == {"val_accuracy": [(2, 0.5)]}
        with pytest.raises(Exception, match="step must be an integer >= 1"):
            store.protocol.report(tid, 2.5, {"val_accuracy": 0.5})
