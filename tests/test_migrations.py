"""Schema migrations (:mod:`naslab.db.migrate`), on SQLite and PostgreSQL.

The database made before migrations existed (``tests/data/naslab-0.1-before-
migrations.sql.gz``) was written by naslab at commit 2d1807a, the last release
without them: four studies (a table search, a multi-objective one, one that reused
results), per-epoch metrics, weights, a failed trial, one left running by a crash,
and an architecture evaluated twice in one study.
"""

from __future__ import annotations

import gzip
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from naslab import Study
from naslab.core.errors import StorageError
from naslab.db import Store, migrate
from naslab.db.models import VIEW_SQL, Base

OLD_DUMP = Path(__file__).parent / "data" / "naslab-0.1-before-migrations.sql.gz"
TABLES = ["naslab_studies", "naslab_architectures", "naslab_trials", "naslab_metrics",
          "naslab_weights", "naslab_proxies", "naslab_predictors", "naslab_pareto_fronts"]


def old_sqlite(path: Path) -> str:
    """An SQLite file with the pre-migration database; returns its URL."""
    with sqlite3.connect(path) as conn:
        conn.executescript(gzip.decompress(OLD_DUMP.read_bytes()).decode())
    return f"sqlite:///{path}"


def upgrade_to(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        migrate.upgrade_in_transaction(conn, revision)
    engine.dispose()


def copy_rows(src_url: str, dst_url: str) -> None:
    """Copy every naslab table's rows (same schema revision) from one database to another."""
    src, dst = sa.create_engine(src_url), sa.create_engine(dst_url)
    src_md, dst_md = sa.MetaData(), sa.MetaData()
    src_md.reflect(src, only=TABLES)
    dst_md.reflect(dst, only=TABLES)
    with src.connect() as s, dst.begin() as d:
        for name in TABLES:  # parents first
            rows = [dict(r._mapping) for r in s.execute(sa.select(src_md.tables[name]))]
            if rows:
                d.execute(sa.insert(dst_md.tables[name]), rows)
            if dst.dialect.name == "postgresql" and "id" in dst_md.tables[name].c:
                d.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {name}), 1))")
    src.dispose()
    dst.dispose()


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar() for t in TABLES}
    engine.dispose()
    return out


def rows_of(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.exec_driver_sql(sql)]
    engine.dispose()
    return out


@pytest.fixture
def old_db(db_url, tmp_path) -> str:
    """The pre-migration database, on the backend of ``db_url`` (PostgreSQL gets the
    same rows in a revision-0001 schema, since the dump is SQLite's)."""
    old = old_sqlite(tmp_path / "old.db")
    if db_url.startswith("sqlite"):
        return old
    upgrade_to(db_url, "0001")
    copy_rows(old, db_url)
    return db_url


def test_migrations_build_the_models_schema(db_url):
    """Upgrading step by step from nothing gives exactly the tables, indexes and views of
    the models (what a new database gets at once)."""
    upgrade_to(db_url, "0001")
    upgrade_to(db_url, "head")
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        diff = [d for d in compare_metadata(context, Base.metadata)
                if not (d[0] == "remove_table" and not d[1].name.startswith("naslab_"))]
        assert diff == []
        views = set(sa.inspect(conn).get_view_names())
        assert migrate.current_revision(conn) == migrate.head_revision()
    engine.dispose()
    assert set(VIEW_SQL) <= views
    with Store(db_url) as store:  # already current: nothing to do
        assert store.upgraded_from is None and store.schema_revision == migrate.head_revision()


def test_new_database_is_stamped_with_the_newest_revision(db_url):
    with Store(db_url) as store:
        assert store.upgraded_from is None
        assert store.schema_revision == migrate.head_revision() == migrate.revisions()[-1]
        _, rows = store.sql.query(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
        assert rows == [(migrate.head_revision(),)]


def test_upgrade_keeps_every_row(old_db):
    before = counts(old_db)
    assert before["naslab_trials"] == 51 and before["naslab_weights"] == 1
    results_sql = ("SELECT study, trial_number, state, arch_hash, objective_value, "
                   "val_accuracy, test_accuracy, params, latency_ms FROM naslab_results "
                   "ORDER BY study, trial_number")
    old_results = rows_of(old_db, results_sql)
    curves = rows_of(old_db, "SELECT * FROM naslab_learning_curves ORDER BY trial_id, step, metric")
    with Store(old_db) as store:
        assert store.upgraded_from == migrate.BASE_REVISION
        assert store.schema_revision == migrate.head_revision()
    assert counts(old_db) == before  # no row lost or added
    # the duplicate evaluation of old-manual (trial 3) is kept, but interrupted (0003)
    duplicate = [r for r in old_results if r[:2] == ("old-manual", 3)]
    assert [(*r[:2], "interrupted", *r[3:]) for r in duplicate] == [
        r for r in rows_of(old_db, results_sql) if r[:2] == ("old-manual", 3)]
    assert [r for r in rows_of(old_db, results_sql) if r[:2] != ("old-manual", 3)] == [
        r for r in old_results if r[:2] != ("old-manual", 3)]
    assert rows_of(old_db, "SELECT * FROM naslab_learning_curves "
                           "ORDER BY trial_id, step, metric") == curves
    with Store(old_db) as store:
        assert store.upgraded_from is None  # once only
        manual = {t.number: t for t in store.trials.list("old-manual")}
        # the duplicate evaluation became a reused result of the first one (0002),
        # then, a study holding each architecture once, interrupted (0003); the trial
        # a crash left running is still there, and a resume interrupts it
        assert manual[3].reused_from == manual[0].id and manual[3].objective_value == 0.71
        assert manual[3].state == "interrupted" and "duplicate of trial id" in manual[3].error
        assert manual[2].state == "running" and manual[1].state == "failed"
        assert store.trials.weights(manual[0].id)["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert store.trials.learning_curve(manual[0].id)["train_loss"] == [(1, 1.2), (2, 0.9)]
        objectives, front = store.fronts.get("old-mo")
        assert objectives == ["val_accuracy:max", "latency_ms:min"] and len(front) == 3
        _, best = store.sql.query(
            "SELECT study, trial_number FROM naslab_best ORDER BY study")
        assert [b[0] for b in best] == ["old-manual", "old-mo", "old-reuse", "old-table"]
    # the old studies resume on the new schema
    report = Study("old-table", space="nasbench_graph", task="cora", searcher="evolution",
                   budget=30, seed=1, storage=old_db).run()
    assert report.complete == 30 and report.trained_this_run + report.reused_this_run == 5
    after = rows_of(old_db, results_sql)
    assert [r for r in after if r[0] == "old-table"][:25] == [
        r for r in old_results if r[0] == "old-table"]


def test_a_newer_schema_is_refused_unchanged(db_url):
    with Store(db_url):
        pass
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StorageError, match="revision '9999'.*newer naslab"):
        Store(db_url)
    assert rows_of(db_url, f"SELECT version_num FROM {migrate.VERSION_TABLE}") == [("9999",)]


def revision_of(url: str) -> str | None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = migrate.current_revision(conn)
    engine.dispose()
    return found


def test_no_automatic_upgrade_when_asked(old_db):
    before = revision_of(old_db)  # SQLite: unversioned; PostgreSQL: 0001
    with pytest.raises(StorageError, match="naslab db upgrade"):
        Store(old_db, upgrade=False)
    assert revision_of(old_db) == before


def test_processes_opening_an_old_database_at_once_upgrade_it_once(old_db):
    before = counts(old_db)
    errors: list[BaseException] = []
    revisions: list[str | None] = []

    def opener() -> None:
        try:
            with Store(old_db) as store:
                revisions.append(store.upgraded_from)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(revisions, key=str) == [migrate.BASE_REVISION, None, None, None], revisions
    assert counts(old_db) == before


def test_the_version_table_is_not_optunas(db_url):
    import optuna

    with Store(db_url) as store:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.create_study(storage=store.connect_url, study_name="optuna-side")
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {"alembic_version", migrate.VERSION_TABLE, "studies", "trials"} <= tables
    with Store(db_url) as store:  # Optuna's alembic_version does not confuse naslab
        assert store.upgraded_from is None


def test_the_head_constant_is_the_newest_script():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate._config())
    assert scripts.get_current_head() == migrate.HEAD_REVISION == migrate.revisions()[-1]
    assert migrate.revisions()[0] == migrate.BASE_REVISION


def test_opening_a_new_database_does_not_starve_behind_a_busy_writer(tmp_path):
    """A process that found no schema waits for the schema lock; meanwhile another
    creates the schema and then takes the write lock again and again (a fast search).
    The waiting one reads the revision again between short tries and opens at once,
    instead of starving in SQLite's busy handler until its busy timeout (a CI failure:
    two ``naslab search`` commands started together on a new file)."""
    from naslab.db.engine import Database

    url = f"sqlite:///{tmp_path / 'new.db'}"
    writer = Database(url)
    holding, stop = threading.Event(), threading.Event()

    def busy_writer() -> None:
        with writer.connect(write=True) as conn:
            with conn.begin():
                holding.set()
                stop.wait(1.0)  # the opener now waits for the lock
                migrate.upgrade_in_transaction(conn)
            while not stop.is_set():  # then write without a pause
                with conn.begin():
                    conn.exec_driver_sql("UPDATE naslab_alembic_version SET version_num "
                                         "= version_num")
                    stop.wait(0.02)

    thread = threading.Thread(target=busy_writer)
    thread.start()
    try:
        assert holding.wait(10)
        start = time.monotonic()
        Store(url, busy_timeout_s=8).close()
        assert time.monotonic() - start < 5
    finally:
        stop.set()
        thread.join()
        writer.close()
