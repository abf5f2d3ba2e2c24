"""D2 Pruning (Maharana, Yadav, Bansal, ICLR 2024): message passing on a k-NN graph to balance
difficulty and diversity.

What the reference does (adymaharana/d2pruning @ bf1ea46, `core/data/sampling.py`,
`GraphDensitySampler.compute_graph_density` and `select_batch_`, driven by
`selection_mp.py::select_coreset`):

1. Optionally drop the `mis_ratio` fraction of hardest samples first (`mislabel_mask`; README:
   0.4 by AUM), then build the graph on the rest.
2. k-NN graph (`kneighbors_graph`, `--n-neighbor`, default 10, README 5) with **Euclidean, not
   squared** distances; every edge i->j is also written j->i, so the graph is the symmetric
   union of the k-NN relations.
3. Forward message passing (`--graph-mode sum`): s~_i = s_i + sum_{j in N(i)} exp(-d_ij) s_j,
   neighbour scores floored at 1e-7; gamma_forward is fixed to 1 in the code.
4. Reverse message passing, greedy (`--graph-sampling-mode weighted`): repeatedly take
   i* = argmax s~ (lowest index on ties), then for every neighbour j of i*
   s~_j <- s~_j - exp(-gamma * d_{i*j}) * s~_{i*}, and remove i* from the candidates, until the
   budget is met (README gamma = 0.1; `absolute` mode subtracts s~_{i*} unweighted).
   Scores are importances (higher = keep), e.g. forgetting; the reference feeds raw AUM (higher
   = easier) in `graph` mode, an orientation bug noted in elfs.md §4.

What this class follows: steps 1-4 with their update rules, the symmetric graph, unsquared
Euclidean distances, argmax with lowest-index ties; `beta` is the reference's `mis_ratio`
(dropped by the same scores, since a label-free run has no AUM); `gamma_forward` is exposed
(1.0 = the reference).

What it changes:
* Neighbours come from the project's cosine k-NN (faiss, chunked), and d_ij is the Euclidean
  distance between the L2-normalised embeddings, sqrt(2 - 2 cos), in [0, 2], so the gammas
  mean the same thing for every encoder (the reference uses raw SwAV features, whose scale
  makes exp(-d) depend on the encoder).
* Scores follow the project convention (higher = harder = more important) and are shifted so
  the smallest is 0 (the reference does this for AUM in `density_sampling`), then floored at
  1e-7 of the largest (the reference floors at 1e-7 absolute, neighbours only). Equal scores
  become all ones, i.e. pure density sampling. The selection is thereby invariant to adding a
  constant to, or multiplying by a positive constant, all scores.
* The greedy loop uses a max-heap with lazy invalidation and O(k) updates per pick, instead of
  an argmax over all N per pick and a dense [N, N] distance matrix: 50k samples take seconds.
* Always one global graph; the reference's per-class mode (`--coreset-mode class`, equal
  budgets per label) is not reproduced, `labels` are ignored. The result is deterministic
  (no randomness is used).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import scipy.sparse as sp

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector, check_prune_rate, hard_first
from coreset_lab.values import check_int, check_real


@register("selector")
class D2(Selector):
    """D2 pruning: forward then reverse message passing on a k-NN graph of the embeddings."""

    name = "d2"

    needs = frozenset({"embeddings"})

    def __init__(
        self,
        prune_rate: float = 0.5,
        k: int = 5,
        gamma_forward: float = 1.0,
        gamma_reverse: float = 0.1,
        beta: float = 0.0,
    ) -> None:
        super().__init__(prune_rate)
        self.k = check_int(k, "selector.k", 1)
        self.gamma_forward = check_real(gamma_forward, "selector.gamma_forward", 0.0, math.inf)
        self.gamma_reverse = check_real(gamma_reverse, "selector.gamma_reverse", 0.0, math.inf)
        self.beta = check_real(beta, "selector.beta", 0.0, 1.0)
        if self.beta > check_prune_rate(prune_rate):
            raise UserError(
                f"selector.beta={self.beta} (hardest fraction dropped first) must not exceed "
                f"selector.prune_rate={self.prune_rate}"
            )

    def select(self, scores, labels, k, rng, embeddings):
        n_drop = math.floor(self.beta * len(scores) + 1e-9)
        pool = np.sort(hard_first(scores)[n_drop:])
        picked = d2_greedy(
            scores[pool], embeddings[pool], k, self.k, self.gamma_forward, self.gamma_reverse
        )
        return pool[picked]


def knn_graph(embeddings: np.ndarray, k: int) -> sp.csr_matrix:
    """Symmetric k-NN graph: CSR [m, m] whose entries are Euclidean distances between the
    L2-normalised embeddings (an edge i-j if j is among i's k nearest or i among j's)."""
    from coreset_lab.clustering.knn import knn

    m = embeddings.shape[0]
    nbr, sim = knn(embeddings, k)
    dist = np.sqrt(np.clip(2.0 - 2.0 * sim.astype(np.float64), 0.0, None)).ravel()
    rows = np.repeat(np.arange(m, dtype=np.int64), k)
    cols = nbr.ravel()
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    d = np.concatenate([dist, dist])
    # each undirected pair once per direction (the first occurrence: i's own search)
    _, first = np.unique(r * m + c, return_index=True)
    r, c, d = r[first], c[first], d[first]
    # stored distances may be exactly 0 (duplicates): keep them as explicit entries
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=m))])
    return sp.csr_matrix((d, c, indptr), shape=(m, m))


def d2_greedy(
    scores: np.ndarray,
    embeddings: np.ndarray,
    budget: int,
    k: int,
    gamma_forward: float,
    gamma_reverse: float,
) -> np.ndarray:
    """Positions (into `scores`) of the `budget` samples D2 picks, in pick order."""
    m = scores.shape[0]
    if budget >= m:
        return np.arange(m)
    s = scores - scores.min()
    top = s.max()
    s = np.ones(m) if top <= 0 else np.maximum(s, 1e-7 * top)
    kk = min(k, m - 1)
    graph = knn_graph(embeddings, kk)
    indptr, indices, dist = graph.indptr, graph.indices, graph.data
    forward = sp.csr_matrix((np.exp(-gamma_forward * dist), indices, indptr), shape=(m, m))
    density = s + forward @ s
    w_rev = np.exp(-gamma_reverse * dist)

    heap = list(zip((-density).tolist(), range(m), strict=True))
    heapq.heapify(heap)
    taken = np.zeros(m, dtype=bool)
    order = np.empty(budget, dtype=np.int64)
    count = 0
    while count < budget:
        neg, i = heapq.heappop(heap)
        if taken[i] or -neg != density[i]:
            continue  # picked already, or a stale entry
        taken[i] = True
        order[count] = i
        count += 1
        a, b = indptr[i], indptr[i + 1]
        nb = indices[a:b]
        density[nb] -= w_rev[a:b] * density[i]
        for j in nb[~taken[nb]].tolist():
            heapq.heappush(heap, (-float(density[j]), j))
    return order
