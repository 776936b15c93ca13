"""Pareto utilities: dominance, sorting, crowding, hypervolume (against brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from naslab.searchers.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_improvement,
    non_dominated_sort,
    normalise,
    pareto_mask,
)

# -- brute-force references -------------------------------------------------------------


def naive_ranks(points: np.ndarray) -> np.ndarray:
    """Front ranks by repeatedly removing the non-dominated points (pairwise loops)."""
    n = len(points)
    ranks = np.full(n, -1)
    rank = 0
    while (ranks < 0).any():
        left = [i for i in range(n) if ranks[i] < 0]
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left)]
        ranks[front] = rank
        rank += 1
    return ranks


def grid_volume(points: np.ndarray, ref: np.ndarray) -> int:
    """Hypervolume of integer points by counting the unit cells they dominate."""
    d = len(ref)
    low = int(min(points.min(), ref.min())) if len(points) else 0
    axes = [np.arange(low, int(r)) for r in ref]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    covered = np.zeros(len(cells), dtype=bool)
    for p in points:
        covered |= np.all(cells >= p, axis=1)
    return int(covered.sum())


def inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume as the measure of a union of boxes, by inclusion-exclusion."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(ref - corner, 0, None))
    return float(total)


# -- dominance and sorting --------------------------------------------------------------


def test_dominates():
    assert dominates([1, 2], [2, 2])
    assert dominates([1, 1, 1], [2, 3, 4])
    assert not dominates([2, 2], [1, 2])
    assert not dominates([1, 2], [1, 2])  # equal points do not dominate
    assert not dominates([1, 3], [2, 2])  # incomparable
    assert not dominates([2, 2], [1, 3])
    assert dominates([-np.inf, 0], [0, 0])


def test_pareto_mask_keeps_duplicates_of_front_points():
    pts = [[1, 5], [2, 3], [2, 3], [4, 1], [3, 4], [5, 5], [4, 1.5]]
    assert pareto_mask(pts).tolist() == [True, True, True, True, False, False, False]
    assert pareto_mask(np.empty((0, 3))).tolist() == []
    assert pareto_mask([[3.0]]).tolist() == [True]
    assert pareto_mask([[1.0], [0.5], [0.5], [2.0]]).tolist() == [False, True, True, False]


def test_non_dominated_sort_hand_made():
    pts = np.array(
        [
            [1, 5],  # 0: front 0
            [2, 3],  # 1: front 0
            [4, 1],  # 2: front 0
            [3, 4],  # 3: dominated by 1 -> front 1
            [5, 2],  # 4: dominated by 2 -> front 1
            [4, 5],  # 5: dominated by 3 -> front 2
            [2, 3],  # 6: copy of 1 -> front 0
            [6, 6],  # 7: dominated by 5 -> front 3
        ]
    )
    assert non_dominated_sort(pts).tolist() == [0, 0, 0, 1, 1, 2, 0, 3]
    assert non_dominated_sort([[3.0], [1.0], [2.0], [1.0]]).tolist() == [2, 0, 1, 0]
    assert non_dominated_sort(np.empty((0, 2))).tolist() == []
    chain = np.repeat(np.arange(50.0)[::-1, None], 3, axis=1)
    assert non_dominated_sort(chain).tolist() == list(range(49, -1, -1))


@pytest.mark.parametrize("d", [2, 3, 4])
def test_non_dominated_sort_matches_naive_peeling(d):
    rng = np.random.default_rng(d)
    for _ in range(20):
        pts = rng.integers(0, 5, size=(int(rng.integers(1, 40)), d)).astype(float)  # many ties
        assert non_dominated_sort(pts).tolist() == naive_ranks(pts).tolist()
        assert np.array_equal(pareto_mask(pts), non_dominated_sort(pts) == 0)


def test_non_dominated_sort_is_fast_enough_for_large_histories():
    pts = np.random.default_rng(0).random((2000, 4))
    ranks = non_dominated_sort(pts)
    assert ranks.min() == 0 and (ranks >= 0).all()
    front = pts[ranks == 0]
    assert not any(dominates(a, b) for a in front[:50] for b in front)


# -- crowding -------------------------------------------------------------------------


def test_crowding_distance_hand_computed():
    pts = np.array([[0, 4], [1, 3], [2, 1], [4, 0]], dtype=float)
    # (1, 3): f1 neighbours 0 and 2 -> 2/4; f2 neighbours 1 and 4 -> 3/4
    # (2, 1): f1 neighbours 1 and 4 -> 3/4; f2 neighbours 0 and 3 -> 3/4
    assert crowding_distance(pts).tolist() == [np.inf, 1.25, 1.5, np.inf]
    assert crowding_distance(pts[::-1]).tolist() == [np.inf, 1.5, 1.25, np.inf]


def test_crowding_distance_small_and_degenerate_fronts():
    assert crowding_distance([[1.0, 2.0], [2.0, 1.0]]).tolist() == [np.inf, np.inf]
    assert crowding_distance([[1.0, 2.0]]).tolist() == [np.inf]
    assert crowding_distance(np.empty((0, 2))).tolist() == []
    # a constant objective adds nothing; the other still spreads the points
    d = crowding_distance([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1:3].tolist() == [0.75, 0.75]


# -- hypervolume ----------------------------------------------------------------------


def test_hypervolume_known_values():
    assert hypervolume([[1, 0], [0, 1]], [2, 2]) == 3.0
    assert hypervolume(np.eye(3), [2, 2, 2]) == 7.0  # 3*4 - 3*2 + 1
    assert hypervolume(np.eye(4), [2, 2, 2, 2]) == 15.0  # 4*8 - 6*4 + 4*2 - 1
    assert hypervolume([[0.5, 0.25, 0.0]], [1, 1, 1]) == pytest.approx(0.375)
    assert hypervolume([[3.0], [1.0], [2.0]], [5.0]) == 4.0
    # a linear front of n points in 2-D: a staircase
    n = 10
    x = np.arange(n) / (n - 1)
    assert hypervolume(np.c_[x, 1 - x], [1, 1]) == pytest.approx(0.5 - 0.5 / (n - 1))


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_matches_cell_counting_on_integer_points(d):
    rng = np.random.default_rng(10 + d)
    for trial in range(60):
        pts = rng.integers(0, 7, size=(int(rng.integers(0, 15)), d)).astype(float)
        ref = np.full(d, 7.0) if trial % 2 else rng.integers(2, 8, size=d).astype(float)
        assert hypervolume(pts, ref) == pytest.approx(grid_volume(pts, ref), abs=1e-9)


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion_on_real_points(d):
    rng = np.random.default_rng(20 + d)
    for _ in range(25):
        pts = rng.random((int(rng.integers(1, 8)), d))
        ref = rng.uniform(0.6, 1.2, size=d)  # some points fall outside the reference
        assert hypervolume(pts, ref) == pytest.approx(inclusion_exclusion(pts, ref), abs=1e-12)


def test_hypervolume_three_objectives_on_a_larger_front():
    """200 points of a spherical front: dominated and duplicated points change nothing,
    nor does the order; the sum of exclusive contributions is at most the whole."""
    rng = np.random.default_rng(0)
    front = np.abs(rng.normal(size=(200, 3)))
    front /= np.linalg.norm(front, axis=1, keepdims=True)
    ref = np.full(3, 1.1)
    hv = hypervolume(front, ref)
    assert 1.1**3 - 1 < hv < 1.1**3
    noisy = np.vstack([front, front[:20], front[:50] + 0.01])
    assert hypervolume(rng.permutation(noisy), ref) == pytest.approx(hv, rel=1e-12)
    # scaling every objective by 2 scales the volume by 8
    assert hypervolume(2 * front, 2 * ref) == pytest.approx(8 * hv, rel=1e-12)
    # the 4-D slicing agrees with the 3-D sweep on a degenerate fourth objective
    assert hypervolume(np.c_[front, np.zeros(200)], np.r_[ref, 1.0]) == pytest.approx(hv)


def test_hypervolume_reference_edge_cases():
    ref = [2.0, 2.0]
    assert hypervolume(np.empty((0, 2)), ref) == 0.0
    assert hypervolume([], ref) == 0.0
    assert hypervolume([[2.0, 0.0], [0.0, 2.0]], ref) == 0.0  # on the reference: nothing
    assert hypervolume([[3.0, 0.0], [0.0, 5.0]], ref) == 0.0  # beyond it: nothing
    assert hypervolume([[1.0, 1.0], [2.0, 0.0], [5.0, -1.0]], ref) == 1.0
    assert hypervolume([[1.0, 1.0, 2.0]], [2.0, 2.0, 2.0]) == 0.0
    assert hypervolume([[1.0, 1.0, 1.0, 2.5]], [2.0, 2.0, 2.0, 2.0]) == 0.0
    assert hypervolume([[-1.0, -1.0]], [1.0, 1.0]) == 4.0  # negative coordinates are fine


# -- hypervolume improvement ------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_improvement_is_the_difference(d):
    rng = np.random.default_rng(30 + d)
    ref = np.full(d, 1.0)
    for _ in range(30):
        front = rng.random((int(rng.integers(0, 10)), d))
        point = rng.uniform(0, 1.1, size=d)
        expected = hypervolume(np.vstack([front, point]), ref) - hypervolume(front, ref)
        assert hypervolume_improvement(point, front, ref) == pytest.approx(expected, abs=1e-12)


def test_hypervolume_improvement_edge_cases():
    front = [[1.0, 3.0], [3.0, 1.0]]
    ref = [4.0, 4.0]
    assert hypervolume_improvement([2.0, 2.0], front, ref) == 1.0
    assert hypervolume_improvement([3.0, 3.0], front, ref) == 0.0  # dominated
    assert hypervolume_improvement([1.0, 3.0], front, ref) == 0.0  # a copy
    assert hypervolume_improvement([0.0, 4.0], front, ref) == 0.0  # on the reference
    assert hypervolume_improvement([1.0, 1.0], [], ref) == 9.0  # empty front: its box
    assert hypervolume_improvement([0.0, 0.0], front, ref) == 16.0 - 5.0  # all but the front


# -- normalise and input checks -------------------------------------------------------


def test_normalise():
    pts = np.array([[10.0, -1.0], [20.0, 1.0], [30.0, 0.0]])
    out = normalise(pts, [10.0, -1.0], [30.0, 1.0])
    assert out.tolist() == [[0.0, 0.0], [0.5, 1.0], [1.0, 0.5]]
    assert normalise([[5.0, 5.0]], 0.0, 10.0).tolist() == [[0.5, 0.5]]
    assert normalise([[15.0]], [0.0], [10.0]).tolist() == [[1.5]]  # not clipped
    assert normalise([], [0.0, 0.0], [1.0, 1.0]).shape == (0, 2)
    with pytest.raises(ValueError, match="high > low"):
        normalise(pts, [10.0, 1.0], [30.0, 1.0])
    with pytest.raises(ValueError, match="one value per objective"):
        normalise(pts, [0.0, 0.0, 0.0], 1.0)


def test_shape_errors_say_what_is_expected():
    with pytest.raises(ValueError, match=r"shape \(n_points, n_objectives\)"):
        pareto_mask([1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(n_points, n_objectives\)"):
        non_dominated_sort(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="at least one objective"):
        crowding_distance(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="3 objective"):
        hypervolume(np.zeros((4, 3)), [1.0, 1.0])
    with pytest.raises(ValueError, match="reference must be a non-empty 1-D"):
        hypervolume(np.zeros((4, 2)), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="point has 3"):
        hypervolume_improvement([0.0, 0.0, 0.0], np.zeros((1, 2)), [1.0, 1.0])
    with pytest.raises(ValueError, match="front have 3"):
        hypervolume_improvement([0.0, 0.0], np.zeros((1, 3)), [1.0, 1.0])
    with pytest.raises(ValueError, match="b has 3"):
        dominates([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        non_dominated_sort([[1.0, np.nan]])
    with pytest.raises(ValueError, match="NaN"):
        hypervolume([[0.0, 0.0]], [1.0, np.nan])
