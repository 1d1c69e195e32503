"""EPIC's selection (Yang et al. 2022) as pure numpy functions.

Per class, facility location over the last-layer gradient proxy g = softmax(h·Wᵀ) − onehot(y) with the
kernel s = exp(−‖gᵢ − gⱼ‖ / C) picks k_c medoids (lazy greedy); every point joins its most similar medoid,
and the points of clusters of size <= threshold (medoids nobody else joins) are the isolated ones EPIC
drops. How a point finds its cluster's size is `cluster_index`: `official` as the official code does it
(class c's cluster ids are offset by c·k_c into the concatenation of the per-class size vectors, which
is offset by Σ_{c'<c} k_c': the two agree only when every k_c is equal, so on Waterbirds and CelebA the
second class's keep/drop decisions read the first class's medoid sizes), `fixed` with each class's own
sizes (docs/deviations.md).

Binary tasks take an exact 1-D path: within a class, g is ±(p, −p), so ‖Δg‖ = √2·|Δt| with t = (g₀ − g₁)/2
and facility location is solved on the sorted distinct values with prefix sums, in O(n) memory. It is the
exact greedy (ties: larger gain, then the higher index; nearest medoid, then the earlier one, as numpy's
argmax), as the dense path; without exact ties both make submodlib's choices (the official
solver, tests/test_epic_official.py); where gains tie in exact arithmetic (saturated duplicates, symmetric
candidates) submodlib's float32 kernel picks by rounding noise and the paths here by index, an equally
good selection. Gains and similarities are compared after rounding, for the same reason; that the two
paths agree is tests/test_properties.py's property. CelebA's 138k-point class would need a 77 GB dense kernel.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy.spatial.distance import cdist

# Gains and similarities are compared after rounding, so that ties that are exact in real numbers (two
# points between the same medoids, equidistant medoids) are broken by index in both paths, not by float noise.
GAIN_DECIMALS, SIM_DECIMALS = 9, 12


def gradient_proxy(features: np.ndarray, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
    """softmax(h·Wᵀ) − onehot(y) in float64; the classifier bias is left out, as in EPIC's default branch."""
    z = np.asarray(features, dtype=np.float64) @ np.asarray(weight, dtype=np.float64).T
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p


def class_budgets(counts: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """k_c = ceil(B·N_c/N), then the surplus is taken from that many distinct random classes (official rule)."""
    counts = np.asarray(counts, dtype=np.int64)
    k = np.ceil(counts / counts.sum() * budget).astype(np.int64)
    surplus = int(k.sum() - budget)
    if surplus > 0:
        eligible = np.flatnonzero(k > 0)
        k[rng.permutation(eligible)[:surplus]] -= 1
    return k


def similarity(g: np.ndarray) -> np.ndarray:
    """The dense kernel exp(−‖gᵢ − gⱼ‖₂ / D), D = the proxy's dimension (submodlib's Euclidean kernel)."""
    return np.exp(-cdist(g, g) / g.shape[1])


def facility_location_dense(sim: np.ndarray, k: int) -> np.ndarray:
    """Lazy greedy maximisation of F(S) = Σᵢ max_{j∈S} sᵢⱼ; the order of selection (ties: higher index).

    It returns exactly the plain greedy's choices (a popped point wins only against every remaining bound,
    index included), so the 1-D path can match it tie for tie."""
    cur = np.zeros(len(sim))
    heap = [(-float(v), -j) for j, v in enumerate(np.round(sim.sum(0), GAIN_DECIMALS))]
    heapq.heapify(heap)
    order = []
    while len(order) < k:
        _, neg_j = heapq.heappop(heap)
        j = -neg_j
        gain = round(float(np.maximum(sim[:, j] - cur, 0.0).sum()), GAIN_DECIMALS)
        # Upper bounds only shrink (submodularity): j wins if it beats the best remaining bound.
        if not heap or (gain, j) >= (-heap[0][0], -heap[0][1]):
            order.append(j)
            cur = np.maximum(cur, sim[:, j])
        else:
            heapq.heappush(heap, (-gain, neg_j))
    return np.asarray(order, dtype=np.int64)


def assign_dense(sim: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position in `order` of each point's most similar medoid (argmax: ties go to the earlier medoid)."""
    return np.argmax(np.round(sim[:, order], SIM_DECIMALS), axis=1)


def facility_location_1d(t: np.ndarray, k: int, scale: float) -> np.ndarray:
    """The dense greedy's choices for sᵢⱼ = exp(−scale·|tᵢ − tⱼ|), without the n×n matrix.

    Works on the distinct values (weighted by multiplicity): a candidate between selected neighbours L < v < R
    only gains on the points between L and R that are closer to v, so its gain is two prefix-sum ranges.
    Each interval between medoids keeps its best candidate in a heap; a selection splits one interval.
    """
    u, counts = np.unique(t, return_counts=True)
    # A distinct value stands for its highest-index point (the one the dense greedy picks among equals).
    last = len(t) - 1 - np.unique(t[::-1], return_index=True)[1]
    m, centre = len(u), float(u.mean()) if len(u) else 0.0
    cur = np.zeros(m)  # current coverage max_{j∈S} s(w, j) of each distinct value
    heap, order = [], []

    def s(a, b):
        return np.exp(-scale * np.abs(a - b))

    def push_best(lp: int, rp: int):
        lo, hi = lp + 1, rp  # candidates u[lo:hi], strictly between the medoids at lp and rp (or the ends)
        if lo >= hi:
            return
        tv, w, c = u[lo:hi], counts[lo:hi], cur[lo:hi]
        ea, eb = np.exp(scale * (tv - centre)), np.exp(-scale * (tv - centre))
        pa, pb, pc = (np.concatenate([[0.0], np.cumsum(w * x)]) for x in (ea, eb, c))
        i = np.arange(hi - lo)
        jl = np.searchsorted(tv, (u[lp] + tv) / 2, side="right") if lp >= 0 else np.zeros_like(i)
        jr = np.searchsorted(tv, (tv + u[rp]) / 2, side="left") if rp < m else np.full_like(i, hi - lo)
        left = eb * (pa[i + 1] - pa[jl]) - (pc[i + 1] - pc[jl])  # points in (mid(L, v), v]
        right = ea * (pb[jr] - pb[i + 1]) - (pc[jr] - pc[i + 1])  # points in (v, mid(v, R))
        gain = np.round(left + right, GAIN_DECIMALS)
        best = gain.max()
        ties = np.flatnonzero(gain == best)
        v = ties[np.argmax(last[lo + ties])]
        heapq.heappush(heap, (-float(best), -int(last[lo + v]), lo + int(v), lp, rp))

    push_best(-1, m)
    while len(order) < k and heap:
        neg, neg_idx, v, lp, rp = heapq.heappop(heap)
        if -neg <= 0.0:
            break
        order.append(-neg_idx)
        cur[v] = 1.0
        for a, b in ((lp, v), (v, rp)):
            seg = slice(a + 1, b)
            near = [s(u[seg], u[x]) for x in (a, b, v) if 0 <= x < m]
            cur[seg] = np.maximum.reduce(near)
        push_best(lp, v)
        push_best(v, rp)
    if len(order) < k:  # every distinct value is a medoid: the rest have zero gain, highest index first
        rest = np.setdiff1d(np.arange(len(t)), order)[::-1]
        order += rest[: k - len(order)].tolist()
    return np.asarray(order, dtype=np.int64)


def assign_1d(t: np.ndarray, order: np.ndarray, scale: float) -> np.ndarray:
    """Position in `order` of each point's most similar medoid in 1-D (ties: the earlier medoid).

    Similarities are compared rounded, so more medoids than the two neighbours of a point can tie with the
    nearest one (medoid values closer together than the rounding). Similarity falls with distance, so the
    tied medoids are a window of the sorted medoid values, bounded by bisection; the earliest medoid of
    the window is a range minimum.
    """
    vals, rank = t[order], np.arange(len(order))
    srt = np.lexsort((rank, vals))
    keep = np.concatenate([[True], vals[srt][1:] != vals[srt][:-1]])  # earliest medoid of each value
    mv, mr = vals[srt][keep], rank[srt][keep]
    m = len(mv)

    def sim(j):  # each point's rounded similarity to the medoid value mv[j[i]]
        return np.round(np.exp(-scale * np.abs(mv[j] - t)), SIM_DECIMALS)

    pos = np.searchsorted(mv, t, side="left")  # mv[pos - 1] < t <= mv[pos]
    sl = np.where(pos > 0, sim(np.maximum(pos - 1, 0)), -1.0)
    sr = np.where(pos < m, sim(np.minimum(pos, m - 1)), -1.0)
    best = np.maximum(sl, sr)
    # Left of t: the first index in [0, pos - 1] still tied (a suffix of it is); right: the last in [pos, m - 1].
    lo, hi = np.zeros_like(pos), np.where(sl == best, pos - 1, 0)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        tied = sim(mid) == best
        lo, hi = np.where(tied | (lo >= hi), lo, mid + 1), np.where(tied & (lo < hi), mid, hi)
    first = np.where(sl == best, lo, pos)
    lo, hi = np.where(sr == best, pos, m - 1), np.full_like(pos, m - 1)
    while np.any(lo < hi):
        mid = (lo + hi + 1) // 2
        tied = sim(mid) == best
        lo, hi = np.where(tied & (lo < hi), mid, lo), np.where(tied | (lo >= hi), hi, mid - 1)
    last = np.where(sr == best, lo, pos - 1)
    return _range_min(mr, first, last)


def _range_min(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min(a[lo[i] : hi[i] + 1]) for every i (a sparse table: O(len(a) log len(a)) memory)."""
    table = [a]
    while 2 ** len(table) <= len(a):
        prev, half = table[-1], 2 ** (len(table) - 1)
        table.append(np.minimum(prev[:-half], prev[half:]))
    level = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
    out = np.empty(len(lo), dtype=a.dtype)
    for k in np.unique(level):
        i = level == k
        out[i] = np.minimum(table[k][lo[i]], table[k][hi[i] - 2**k + 1])
    return out


PATHS = ("auto", "dense", "1d")  # auto: the exact 1-D path for two classes, the dense kernel otherwise


def medoids(g: np.ndarray, k: int, path: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(order, cluster) for one class: selected medoids (class-local indices) and each point's cluster."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}")
    if path == "auto":
        path = "1d" if g.shape[1] == 2 else "dense"
    if path == "1d":
        if g.shape[1] != 2:
            raise ValueError("the 1-D path needs a 2-class gradient proxy")
        t = (g[:, 0] - g[:, 1]) / 2
        scale = math.sqrt(2) / 2  # exp(−‖Δg‖/2) with ‖Δg‖ = √2·|Δt|
        order = facility_location_1d(t, k, scale)
        return order, assign_1d(t, order, scale)
    sim = similarity(g)
    order = facility_location_dense(sim, k)
    return order, assign_dense(sim, order)


CLUSTER_INDEX = ("official", "fixed")


def isolated(g: np.ndarray, y: np.ndarray, subset_size: float, threshold: float, rng: np.random.Generator,
             path: str = "auto", cluster_index: str = "official") -> np.ndarray:
    """EPIC's drop mask over all points: members of clusters whose size (medoid included) is <= threshold.

    `official` reads each point's size at (its class-local cluster + c·k_c) in the concatenated size vector,
    and drops it when that position is past the vector's end; `fixed` reads its own class's sizes.
    """
    if cluster_index not in CLUSTER_INDEX:
        raise ValueError(f"cluster_index must be one of {CLUSTER_INDEX}")
    y = np.asarray(y)
    n_classes = g.shape[1]
    budgets = class_budgets(np.bincount(y, minlength=n_classes), int(subset_size * len(y)), rng)
    all_sizes, lookups = [], []  # the concatenated size vectors; (members, position of each one's size)
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        if len(members) == 0 or budgets[c] == 0:
            continue
        order, cluster = medoids(g[members], int(budgets[c]), path)
        sizes = np.bincount(cluster, minlength=len(order)).astype(np.float64)
        sizes[sizes == 0] = 1
        # The two lookups differ only in the class's offset into the concatenation.
        offset = c * int(budgets[c]) if cluster_index == "official" else sum(map(len, all_sizes))
        all_sizes.append(sizes)
        lookups.append((members, cluster + offset))
    drop = np.zeros(len(y), dtype=bool)
    concat = np.concatenate([np.zeros(0), *all_sizes])  # empty when no class got a medoid
    for members, ids in lookups:
        drop[members] = (ids >= len(concat)) | (concat[np.minimum(ids, len(concat) - 1)] <= threshold)
    return drop


def selection_epochs(epochs: int, freq: int, drop_after: int, stop_after: int) -> list[int]:
    """Epochs at whose start selection runs (before training on them), as the official schedule."""
    return [e for e in range(epochs) if e % freq == 0 and drop_after <= e < stop_after]
