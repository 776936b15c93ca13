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
from tests.test_store import make_arch, new_study, result


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
    return store.start_trial(study.id, make_arch((op,)), "toy:v1", 3, 0, "w", driver=driver)


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

        def claim(arch, **kw):
            return store.protocol.claim(study.id, arch, "toy:v1", "digits:v1", 3, 0,
                                     driver="d1", budget=3, **kw)

        first = claim(a)
        assert first.state == "running" and first.number == 0
        busy = claim(a)
        assert busy.state == "busy" and busy.trial_id == first.trial_id
        store.protocol.finish(first.trial_id, result(0.8), "val_accuracy")
        known = claim(a, reuse_own=False)
        assert (known.state, known.trial_id, known.value) == ("known", first.trial_id, 0.8)
        assert known.metrics["val_accuracy"] == 0.8
        copy = claim(a)
        assert copy.state == "complete" and copy.reused and copy.value == 0.8
        assert claim(b).state == "running"
        assert claim(c).state == "full"  # 2 finished + 1 running = budget 3
        assert store.trials.count(study.id) == 3
        store.protocol.interrupt_running(study.id)
        assert claim(d).state == "running"  # the interrupted one no longer counts
        with pytest.raises(Exception, match="already complete"):
            store.start_trial(study.id, a, "toy:v1", 3, 0, "w")


def test_batch_commits_together_and_rolls_back_together(db_url):
    with Store(db_url) as store:
        study = new_study(store, budget=100)

        def record(op: str, value: float) -> None:
            store.record_finished(
                study.id, make_arch((op,)), "toy:v1", "digits:v1", 3, 0, "w", "val_accuracy",
                lambda: (result(value), None, ()), driver="d", budget=100)

        with store.batch():
            record("a", 0.1)
            record("b", 0.2)
            with pytest.raises(Exception, match="no 'val_accuracy' metric"):
                store.record_finished(
                    study.id, make_arch(("bad",)), "toy:v1", "digits:v1", 3, 0, "w",
                    "val_accuracy", lambda: (result(0.0).__class__(metrics={"x": 1.0}), None,
                                             ()))
            record("c", 0.3)  # the refused one's savepoint was rolled back, not the batch
        assert [t.objective_value for t in store.trials.list(study.id)] == [0.1, 0.2, 0.3]
        with pytest.raises(RuntimeError), store.batch():
            record("d", 0.4)
            raise RuntimeError("crash inside the batch")
        assert store.trials.count(study.id) == 3


def test_a_late_result_after_the_claim_passed_on_is_kept_not_duplicated(db_url):
    """A driver taken for dead (stale heartbeat) finishes its trial after another
    driver claimed the architecture again: the late result is stored with its trial,
    which stays interrupted, and the study still has one evaluation of it."""
    with Store(db_url) as store:
        study = new_study(store)
        arch = make_arch(("a",))
        late = store.start_trial(study.id, arch, "toy:v1", 3, 0, "w", driver="remote/1/1")
        _make_stale(db_url, late)
        assert store.protocol.interrupt_abandoned(study.id) == 1
        again = store.protocol.claim(study.id, arch, "toy:v1", "digits:v1", 3, 0, driver="d2")
        assert again.state == "running"
        store.protocol.finish(late, result(0.7), "val_accuracy")  # no error
        kept = store.trials.get(late)
        assert kept.state == "interrupted" and kept.objective_value == 0.7
        assert f"trial {again.number} of the study evaluates" in kept.error
        store.protocol.finish(again.trial_id, result(0.71), "val_accuracy")
        assert [t.id for t in store.trials.list(study.id, ["complete"])] == [again.trial_id]
        # without a successor, an interrupted trial that finishes late is complete
        other = store.start_trial(study.id, make_arch(("b",)), "toy:v1", 3, 0, "w")
        store.protocol.interrupt_running(study.id)
        store.protocol.finish(other, result(0.5), "val_accuracy")
        assert store.trials.get(other).state == "complete"
