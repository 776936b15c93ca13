"""Pareto dominance, non-dominated sorting, crowding and hypervolume.

Every function works on points in *minimisation* form: an ``(n, d)`` float array,
one row per point and one column per objective, smaller being better in every
column (turn maximised objectives around first, e.g. with
:func:`naslab.searchers.objectives.as_minimised`). ``a`` dominates ``b`` when it is
no worse in every objective and better in at least one.

Algorithms:

- :func:`non_dominated_sort`: Deb et al.'s fast non-dominated sorting (2002), the
  domination counts computed in vectorised blocks; O(n^2 d) time, O(n) memory
  besides blocks of at most a few million comparisons.
- :func:`hypervolume`: exact. One objective: a difference; two: sort and sweep,
  O(n log n); three: the dimension sweep of Beume et al. (2009), which keeps the
  two-dimensional front of the points seen so far and its area, O(n log n) plus list
  updates; four and more: slices along the last objective (HSO), each slice a
  hypervolume one dimension lower, O(n^(d-2) log n).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_improvement",
    "non_dominated_sort",
    "normalise",
    "pareto_mask",
]

#: Comparisons (block rows x points) made at once by the blocked dominance tests.
_BLOCK_CELLS = 1 << 21


def _points(points: ArrayLike, name: str = "points", dim: int | None = None) -> NDArray[np.float64]:
    """``points`` as an (n, d) float array; an empty input is zero points."""
    arr = np.asarray(points, dtype=float)
    if arr.size == 0 and arr.ndim <= 1:
        arr = arr.reshape(0, 0 if dim is None else dim)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_points, n_objectives), "
            f"got an array of shape {arr.shape}"
        )
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{name} have {arr.shape[1]} objective(s) per point, but {dim} were expected "
            f"(shape {arr.shape})"
        )
    if arr.shape[0] and not arr.shape[1]:
        raise ValueError(f"{name} need at least one objective (shape {arr.shape})")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN")
    return arr


def _vector(vector: ArrayLike, name: str, dim: int | None = None) -> NDArray[np.float64]:
    """``vector`` as a 1-D float array (of length ``dim`` when given)."""
    arr = np.asarray(vector, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D vector, got an array of shape {arr.shape}"
        )
    if dim is not None and arr.size != dim:
        raise ValueError(f"{name} has {arr.size} coordinate(s), but {dim} were expected")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _dominance(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Matrix ``m`` with ``m[i, j]`` = ``a[i]`` dominates ``b[j]``."""
    no_worse = np.ones((len(a), len(b)), dtype=bool)
    better = np.zeros((len(a), len(b)), dtype=bool)
    for k in range(a.shape[1]):
        col_a, col_b = a[:, k, None], b[None, :, k]
        no_worse &= col_a <= col_b
        better |= col_a < col_b
    return no_worse & better


def _dominated_counts(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.int64]:
    """For each point of ``b``, how many points of ``a`` dominate it (blocked)."""
    counts = np.zeros(len(b), dtype=np.int64)
    step = max(1, _BLOCK_CELLS // max(1, len(b)))
    for start in range(0, len(a), step):
        counts += _dominance(a[start : start + step], b).sum(axis=0)
    return counts


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """Whether point ``a`` dominates point ``b``: no worse in every objective and
    strictly better in at least one (minimisation).

    Raises:
        ValueError: if ``a`` and ``b`` are not 1-D vectors of the same length.
    """
    va = _vector(a, "a")
    vb = _vector(b, "b", va.size)
    return bool(np.all(va <= vb) and np.any(va < vb))


def pareto_mask(points: ArrayLike) -> NDArray[np.bool_]:
    """Boolean mask of the non-dominated points of an ``(n, d)`` array.

    Points equal to one another do not dominate each other, so every copy of a
    non-dominated point is kept.
    """
    p = _points(points)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    return _dominated_counts(p, p) == 0


def non_dominated_sort(points: ArrayLike) -> NDArray[np.int64]:
    """Front rank of every point of an ``(n, d)`` array: 0 for the Pareto front, 1 for
    the front of what remains without it, and so on.

    Fast non-dominated sorting (Deb et al. 2002): count the points dominating each
    point, then peel fronts, the members of each front decrementing the counts of the
    points they dominate. With one objective the rank is the dense rank of the value.
    """
    p = _points(points)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if p.shape[1] == 1:
        return np.unique(p[:, 0], return_inverse=True)[1].reshape(n).astype(np.int64)
    counts = _dominated_counts(p, p)
    ranks = np.full(n, -1, dtype=np.int64)
    current = np.flatnonzero(counts == 0)
    rank = 0
    while current.size:
        ranks[current] = rank
        rest = np.flatnonzero(ranks < 0)
        if not rest.size:
            break
        counts[rest] -= _dominated_counts(p[current], p[rest])
        current = rest[counts[rest] == 0]
        rank += 1
    return ranks


def crowding_distance(points: ArrayLike) -> NDArray[np.float64]:
    """NSGA-II's crowding distance of every point of one front (an ``(n, d)`` array).

    For each objective the points are sorted (stably, so ties keep their order); the
    first and last get an infinite distance and every other point adds the gap
    between its two neighbours divided by the objective's range (an objective whose
    values are all equal adds nothing). Fronts of one or two points are all infinite.
    """
    p = _points(points)
    n = len(p)
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    for k in range(p.shape[1]):
        order = np.argsort(p[:, k], kind="stable")
        values = p[order, k]
        dist[order[0]] = dist[order[-1]] = np.inf
        span = values[-1] - values[0]
        if span > 0 and np.isfinite(span):
            dist[order[1:-1]] += (values[2:] - values[:-2]) / span
    return dist


def _hv2d(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Area dominated by 2-D points (all strictly below ``ref``): sort and sweep."""
    order = np.lexsort((p[:, 1], p[:, 0]))
    x = p[order, 0]
    lowest = np.minimum.accumulate(p[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float(np.sum(widths * (ref[1] - lowest)))


def _hv3d(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Volume dominated by 3-D points (all strictly below ``ref``).

    Sweeps the points by increasing third coordinate, keeping the 2-D front of the
    points seen so far (x increasing, y decreasing) and the area it dominates; each
    slab between consecutive third coordinates adds area x thickness.
    """
    rx, ry, rz = (float(v) for v in ref)
    rows = p[np.argsort(p[:, 2], kind="stable")].tolist()
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    last_z = rows[0][2]
    for x, y, z in rows:
        volume += area * (z - last_z)
        last_z = z
        right = bisect_right(xs, x)
        if right and ys[right - 1] <= y:
            continue  # weakly dominated by a point already in the 2-D front
        left = bisect_left(xs, x)
        top = ys[left - 1] if left else ry
        cur_x, end, gain = x, left, 0.0
        while end < len(xs) and ys[end] >= y:  # points the new one dominates
            gain += (xs[end] - cur_x) * (top - y)
            cur_x, top = xs[end], ys[end]
            end += 1
        gain += ((xs[end] if end < len(xs) else rx) - cur_x) * (top - y)
        xs[left:end] = [x]
        ys[left:end] = [y]
        area += gain
    return volume + area * (rz - last_z)


def _hv_sliced(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Volume dominated by points of 4 or more objectives (strictly below ``ref``).

    Slices along the last objective (HSO): sweeping the points by increasing last
    coordinate, the slab up to the next point's coordinate has the (d-1)-dimensional
    hypervolume of the projections of the points seen so far as its cross-section.
    Only the non-dominated projections are kept.
    """
    p = p[np.argsort(p[:, -1], kind="stable")]
    sub_ref = ref[:-1]
    front = np.empty((0, p.shape[1] - 1))
    section: float | None = 0.0
    volume = 0.0
    for i, row in enumerate(p):
        proj = row[:-1]
        if not np.any(np.all(front <= proj, axis=1)):
            front = np.vstack([front[~np.all(proj <= front, axis=1)], proj])
            section = None
        upper = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        if upper > row[-1]:
            if section is None:
                section = _hv(front, sub_ref)
            volume += section * (upper - row[-1])
    return volume


def _hv(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Hypervolume of points already checked to lie strictly below ``ref``."""
    if len(p) == 0:
        return 0.0
    d = p.shape[1]
    if d == 1:
        return float(ref[0] - p[:, 0].min())
    if d == 2:
        return _hv2d(p, ref)
    if d == 3:
        return _hv3d(p, ref)
    return _hv_sliced(p, ref)


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Exact hypervolume dominated by ``points`` (``(n, d)``, minimisation) and bounded
    by the ``reference`` point (``d`` coordinates).

    Only points strictly better than the reference in every objective contribute;
    the others (and dominated points) add nothing. Zero points give 0.

    Raises:
        ValueError: if the shapes do not match or a value is NaN.
    """
    ref = _vector(reference, "reference")
    p = _points(points, dim=ref.size)
    return _hv(p[np.all(p < ref, axis=1)], ref)


def hypervolume_improvement(point: ArrayLike, front: ArrayLike, reference: ArrayLike) -> float:
    """How much ``point`` adds to the hypervolume of ``front``:
    ``hypervolume(front + [point]) - hypervolume(front)``.

    Computed as the point's own box minus the hypervolume of the front limited to
    that box (each member replaced by its coordinate-wise maximum with the point),
    which avoids subtracting two large, nearly equal volumes.
    """
    ref = _vector(reference, "reference")
    x = _vector(point, "point", ref.size)
    f = _points(front, "front", ref.size)
    if not np.all(x < ref):
        return 0.0
    f = f[np.all(f < ref, axis=1)]
    if np.any(np.all(f <= x, axis=1)):
        return 0.0
    limited = np.maximum(f, x)
    limited = limited[np.all(limited < ref, axis=1)]
    return max(0.0, float(np.prod(ref - x)) - _hv(limited, ref))


def normalise(points: ArrayLike, low: ArrayLike, high: ArrayLike) -> NDArray[np.float64]:
    """``points`` with each column scaled linearly so that ``low`` maps to 0 and
    ``high`` to 1 (values outside the bounds land outside [0, 1]; nothing is clipped).

    ``low`` and ``high`` are scalars or one value per column, with ``high > low``.
    Used to make hypervolumes comparable across objectives of different units.
    """
    p = _points(points)
    if p.shape == (0, 0):  # no points: the bounds say how many objectives
        p = p.reshape(0, max(np.size(low), np.size(high)))
    d = p.shape[1]
    bounds = []
    for name, value in (("low", low), ("high", high)):
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            arr = np.full(d, float(arr))
        if arr.shape != (d,):
            raise ValueError(
                f"{name} must be a scalar or have one value per objective ({d}), "
                f"got shape {arr.shape}"
            )
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        bounds.append(arr)
    lo, hi = bounds
    if np.any(hi <= lo):
        bad = np.flatnonzero(hi <= lo).tolist()
        raise ValueError(f"normalise needs high > low in every column; not so in column(s) {bad}")
    return (p - lo) / (hi - lo)
