"""Issue 14 item 11, the searchers' part: every built-in searcher's numeric and
boolean options are checked by type and range when the searcher is built (no
``int(3.5)``, no ``True`` as 1, no NaN, no infinity, no 70-bit integers), with a
message naming the option; unknown option names list the accepted ones; through
the CLI each is one ``error:`` line, exit 2, and the store is unchanged."""

from __future__ import annotations

import inspect
import math
import sqlite3

import numpy as np
import pytest

import naslab
from naslab.components import resolve, resolve_searcher
from naslab.core.errors import ConfigError, NaslabError
from naslab.core.validation import CommandLineInt, CommandLineWord
from naslab.searchers.registry import (
    SEARCHERS,
    check_searcher,
    get_searcher,
    searcher_class,
)
from naslab.study import Study
from tests.cli_helpers import one_line_error, run_main, store_with_one_study

#: Integer options and their smallest accepted value.
INT_OPTIONS = {
    "seed": 0, "max_retries": 0, "population_size": 2, "sample_size": 1,
    "initial_samples": 1, "candidates": 1, "parents": 1, "refit_every": 1,
    "local_steps": 0, "local_starts": 1, "screen": 1, "transfer_size": 2,
}
#: Float options and their accepted range.
FLOAT_OPTIONS = {"kappa": (0.0, None), "random_fraction": (0.0, 1.0),
                 "crossover_prob": (0.0, 1.0)}
BOOL_OPTIONS = {"first_improvement"}
#: Options that are not numbers or booleans (checked elsewhere in this module).
OTHER_OPTIONS = {"space", "objectives", "storage", "study_name", "sampler",
                 "sampler_options", "predictor", "predictor_options", "acquisition",
                 "pool", "transfer_from", "transfer_studies"}

BAD_FOR_ALL = ["abc", math.nan, math.inf, -math.inf, None, [3], {"a": 1}]


def _bad_ints(minimum: int) -> list:
    bad = [3.5, 2.0, True, False, np.float64(4.0), 2**70, -(2**70), -1, *BAD_FOR_ALL]
    if minimum > 0:
        bad += [minimum - 1, 0]
    return bad


def _bad_floats(low: float, high: float | None) -> list:
    bad = [True, False, -1, -1e-9, *BAD_FOR_ALL]
    if high is not None:
        bad += [high + 0.5, 2**70]
    return bad


BAD_BOOLS = [1, 0, 1.0, "no", "yes", "true", np.int64(1), *BAD_FOR_ALL]


def _base_options(name: str) -> dict:
    """Options that keep the build fast (tree predictors, no torch)."""
    return {"predictor": "rf"} if name.startswith("guided") else {}


def _options_of(name: str) -> list[str]:
    params = inspect.signature(searcher_class(name).__init__).parameters
    return [p for p in params if p != "self"]


def _cases() -> list:
    cases = []
    for name in SEARCHERS:
        params = inspect.signature(searcher_class(name).__init__).parameters
        for option in _options_of(name):
            if option in INT_OPTIONS:
                bad = _bad_ints(INT_OPTIONS[option])
            elif option in FLOAT_OPTIONS:
                bad = _bad_floats(*FLOAT_OPTIONS[option])
            elif option in BOOL_OPTIONS:
                bad = BAD_BOOLS
            else:
                continue
            if params[option].default is None:  # None means "the default"
                bad = [v for v in bad if v is not None]
            cases += [pytest.param(name, option, value, id=f"{name}-{option}-{value!r}")
                      for value in bad]
    return cases


@pytest.fixture(scope="module")
def space():
    return resolve("nasbench_graph", "cora")[0]


def test_every_option_is_classified():
    """A new searcher option must join one of the tables above (and so this test)."""
    known = set(INT_OPTIONS) | set(FLOAT_OPTIONS) | BOOL_OPTIONS | OTHER_OPTIONS
    for name in SEARCHERS:
        assert set(_options_of(name)) <= known, (name, set(_options_of(name)) - known)


@pytest.mark.parametrize(("name", "option", "value"), _cases())
def test_bad_numbers_and_booleans_refused(space, name, option, value):
    options = {**_base_options(name), option: value}
    with pytest.raises(NaslabError, match=option):
        naslab.resolve("searcher", name, space=space, **options)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_good_values_still_accepted(space, name):
    """Integers of any integral type, ints for floats, and booleans as booleans."""
    options = _base_options(name)
    for option in _options_of(name):
        if option in INT_OPTIONS:
            options[option] = np.int64(max(INT_OPTIONS[option], 1) + 1)
        elif option in FLOAT_OPTIONS:
            options[option] = 1  # an int is a fine float
        elif option in BOOL_OPTIONS:
            options[option] = True
    searcher = naslab.resolve("searcher", name, space=space, **options)
    if "population_size" in options:
        assert searcher.population_size == 3 and type(searcher.population_size) is int
    if "crossover_prob" in options:
        assert searcher.crossover_prob == 1.0 and type(searcher.crossover_prob) is float
    assert type(searcher.seed) is int and type(searcher.max_retries) is int


def test_command_line_words_are_booleans_only_where_booleans_are_meant(space):
    s = get_searcher("local", space, first_improvement=CommandLineWord("yes"))
    assert s.first_improvement is True
    s = get_searcher("local", space, first_improvement=CommandLineInt(0))
    assert s.first_improvement is False
    s = get_searcher("evolution", space, sample_size=CommandLineInt(1))
    assert s.sample_size == 1  # "1" typed is still an integer
    with pytest.raises(ConfigError, match="population_size"):
        get_searcher("evolution", space, population_size=CommandLineWord("yes"))


def test_evolution_sample_size_within_population(space):
    with pytest.raises(ConfigError, match="sample_size <= population_size"):
        get_searcher("evolution", space, population_size=3, sample_size=4)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_unknown_option_names_list_the_accepted_ones(space, name):
    with pytest.raises(ConfigError) as info:
        naslab.resolve("searcher", name, space=space, populaton_size=5)
    message = str(info.value)
    assert "populaton_size" in message and "accepts:" in message
    assert "max_retries" in message


@pytest.mark.parametrize(("name", "options", "message"), [
    ("random", {"space": "nb201"}, "space"),
    ("optuna-tpe", {"sampler": "gp"}, "sets sampler itself"),
    ("optuna-tpe", {"sampler_options": [1]}, "sampler_options must be a mapping"),
    ("optuna-tpe", {"sampler_options": "n_startup_trials=3"}, "sampler_options"),
    ("optuna-tpe", {"sampler_options": {"seed": 1}}, "seed"),
    ("optuna-tpe", {"sampler_options": {"bogus": 1}}, "accepts"),
    ("optuna-tpe", {"study_name": ""}, "study_name"),
    ("optuna-tpe", {"storage": "memory"}, "storage"),
    ("guided-evolution", {"acquisition": "pi"}, "acquisition"),
    ("guided-evolution", {"acquisition": 1}, "acquisition"),
    ("guided-evolution", {"predictor": 3}, "predictor"),
    ("guided-evolution", {"predictor": "nope"}, "nope"),
    ("guided-evolution", {"predictor": "rf", "predictor_options": [1]}, "predictor_options"),
    ("guided-optuna", {"predictor": "rf", "acquisition": "pi"}, "acquisition"),
    ("guided-evolution", {"predictor": "rf", "candidates": 10**8}, "candidates"),
    ("guided-evolution", {"predictor": "rf", "local_steps": 10**9}, "local_steps"),
    ("guided-optuna", {"predictor": "rf", "screen": 10**9}, "screen"),
    ("random", {"max_retries": 10**12}, "max_retries"),
])
def test_other_bad_options(space, name, options, message):
    """Names, mappings and the options the application gives (``get_searcher`` is
    what a Study by name calls)."""
    with pytest.raises(NaslabError, match=message):
        get_searcher(name, space, **options)


@pytest.mark.parametrize("option", ["seed", "space"])
def test_seed_and_space_are_not_searcher_options(space, option):
    """A Study gives them itself (resolve_searcher is what it calls): before, a
    TypeError ('got multiple values') reached the user as a traceback."""
    with pytest.raises(ConfigError, match=option):
        resolve_searcher("evolution", space, 0, {option: 3})


def test_check_searcher_builds_an_optuna_searcher_without_its_storage(space, tmp_path):
    where = tmp_path / "never.db"
    check_searcher("optuna-tpe", space, 0, {"storage": f"sqlite:///{where}"})
    assert not where.exists()
    with pytest.raises(ConfigError, match="max_retries"):
        check_searcher("optuna-tpe", space, 0, {"max_retries": 2.5})


# -- the CLI and the Study ------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    """A store with one study, and a function hashing its content."""
    return store_with_one_study(tmp_path / "opts.db")


CLI_REFUSED = [
    ("evolution", "population_size=3.5", "population_size"),
    ("evolution", "population_size=true", "population_size"),
    ("evolution", "sample_size=0", "sample_size"),
    ("evolution", f"population_size={2**70}", "population_size"),
    ("evolution", "seed=3", "seed"),
    ("random", "max_retries=-1", "max_retries"),
    ("local", "first_improvement=maybe", "first_improvement"),
    ("local", "initial_samples=2.7", "initial_samples"),
    ("nsga2", "crossover_prob=true", "crossover_prob"),
    ("nsga2", "population_size=1", "population_size"),
    ("guided-evolution", "random_fraction=true", "random_fraction"),
    ("guided-evolution", "kappa=-1", "kappa"),
    ("guided-evolution", "populaton_size=5", "accepts"),
]


@pytest.mark.parametrize(("searcher", "option", "message"), CLI_REFUSED)
def test_cli_refuses_bad_searcher_options(db, monkeypatch, capsys, searcher, option, message):
    url, content = db
    before = content()
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                            "--task", "cora", "--searcher", searcher, "--searcher-opt", option,
                            "--budget", "2", "--storage", url, "--study", "bad",
                            "--in-process")
    assert code == 2, err
    assert message in one_line_error(err)
    assert content() == before


OPTUNA_REFUSED = [
    ("optuna-tpe", "max_retries=2.5", "max_retries"),
    ("optuna-tpe", "sampler=gp", "sampler"),
    ("guided-optuna", "screen=true", "screen"),
]


def _naslab_rows(url: str) -> list:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'naslab%' "
            "ORDER BY name")]
        return [(t, conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables]


@pytest.mark.parametrize(("searcher", "option", "message"), OPTUNA_REFUSED)
def test_cli_refuses_bad_optuna_options_before_any_study_row(db, monkeypatch, capsys,
                                                             searcher, option, message):
    url, _ = db
    before = _naslab_rows(url)
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                            "--task", "cora", "--searcher", searcher, "--searcher-opt", option,
                            "--searcher-opt", "predictor=rf", "--budget", "2", "--storage", url,
                            "--study", "bad", "--in-process")
    assert code == 2, err
    assert message in one_line_error(err)
    assert _naslab_rows(url) == before


def test_cli_bad_optuna_option_leaves_the_whole_file_unchanged(db, monkeypatch, capsys):
    url, content = db
    before = content()
    code, _, err = run_main(monkeypatch, capsys, "search", "--space", "nasbench_graph",
                            "--task", "cora", "--searcher", "optuna-tpe", "--searcher-opt",
                            "max_retries=2.5", "--budget", "2", "--storage", url,
                            "--study", "bad", "--in-process")
    assert code == 2, err
    assert content() == before


def test_study_refuses_before_opening_the_store(tmp_path):
    where = tmp_path / "never.db"
    with pytest.raises(ConfigError, match="population_size"):
        Study("s", space="nasbench_graph", searcher="evolution", budget=2,
              storage=f"sqlite:///{where}", searcher_options={"population_size": 3.5})
    assert not where.exists()
