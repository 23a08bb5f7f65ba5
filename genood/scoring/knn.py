"""k-nearest-neighbour distance to a bank of in-distribution feature vectors (higher = more OOD).

``KNNScorer`` fits a bank on the fit split's ``outputs[key]`` (``[N, D]``, e.g. DTE's scaled input
``"features"``, a classifier's penultimate features, MSMA's score norms) and scores a query by its
distance to the k-th nearest bank vector (PyOD's ``KNN(method="largest")``, the kNN baseline of ADBench /
DTE with k = 5) or by the mean of its k smallest distances.

:func:`knn_sq_distances` is the reusable kernel: the ``k`` smallest squared Euclidean distances from each
query to the bank, computed with ``torch.cdist`` in query chunks on the queries' device so that memory
stays bounded (``chunk x N_bank`` floats at a time). A query that is itself in the bank finds itself at
distance 0 (the unsupervised protocol does this by design); ``exclude_self=True`` drops one zero-distance
neighbour per query for leave-one-out statistics on the bank itself.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch

from genood.scoring.base import Outputs, Scorer

# At most this many distance entries (floats) in memory per chunk: 2^24 = 64 MiB in float32.
CHUNK_ELEMENTS = 1 << 24


def get_features(outputs: Outputs, key: str, scorer: str) -> torch.Tensor:
    """``outputs[key]`` as a float ``[N, D]`` tensor (trailing dims flattened; float64 stays float64, any other
    dtype becomes float32), with clear errors."""
    if key not in outputs:
        raise ValueError(f"scorer {scorer!r} needs the model output {key!r} (per-sample feature vectors [N, D]); "
                         f"the outputs only have {sorted(outputs)}")
    f = outputs[key]
    if not torch.is_tensor(f) or f.ndim < 2:
        shape = tuple(f.shape) if torch.is_tensor(f) else type(f).__name__
        raise ValueError(f"scorer {scorer!r}: output {key!r} must be a tensor [N, D], got {shape}")
    f = f.flatten(1)
    return f if f.dtype == torch.float64 else f.float()


_shared: Optional[dict] = None  # the distances computed inside a shared_knn() block


@contextmanager
def shared_knn():
    """Within this block, :func:`knn_sq_distances` computes each (queries, bank, k, exclude_self) once: scorers
    that read the same features against the same bank (DTE-NP on two grids and the kNN distance, all with
    K = 5) share one pass. The evaluator scores every set inside one block; the block holds the tensors it
    keyed on (so no other tensor can take their memory and their key) and drops everything on exit."""
    global _shared
    outer, _shared = _shared, {} if _shared is None else _shared
    try:
        yield
    finally:
        _shared = outer


def knn_sq_distances(queries: torch.Tensor, bank: torch.Tensor, k: int, exclude_self: bool = False,
                     chunk_size: Optional[int] = None) -> torch.Tensor:
    """The ``k`` smallest squared Euclidean distances from each query to the bank, ascending, ``[N, k]``.

    Runs on ``queries.device`` (the bank is moved there). ``exclude_self`` drops each query's nearest
    neighbour (use it only when the queries *are* the bank: leave-one-out). ``chunk_size`` rows per
    ``torch.cdist`` call (default: as many as keep ``chunk x N_bank <= 2^24``). Inside :func:`shared_knn`
    a repeated call returns the first call's result.
    """
    if _shared is None:
        return _knn_sq_distances(queries, bank, k, exclude_self, chunk_size)
    key = (_tensor_key(queries), _tensor_key(bank), k, exclude_self)
    if key not in _shared:
        _shared[key] = (queries, bank, _knn_sq_distances(queries, bank, k, exclude_self, chunk_size))
    return _shared[key][2].clone()


def _tensor_key(t: torch.Tensor) -> tuple:
    version = None if t.is_inference() else t._version  # inference tensors keep no version counter
    return (t.device, t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype, version)


def _knn_sq_distances(queries: torch.Tensor, bank: torch.Tensor, k: int, exclude_self: bool,
                      chunk_size: Optional[int]) -> torch.Tensor:
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"knn: need queries [N, D] and bank [M, D] with the same D, got {tuple(queries.shape)} "
                         f"and {tuple(bank.shape)}")
    need = k + int(exclude_self)
    if k < 1 or bank.shape[0] < need:
        raise ValueError(f"knn: k={k}{' (+1 for exclude_self)' if exclude_self else ''} needs at least {need} bank "
                         f"vectors, the bank has {bank.shape[0]}; lower k or fit on more data")
    bank = bank.to(device=queries.device, dtype=queries.dtype)
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(1, bank.shape[0]))
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        d2 = torch.cdist(queries[start:start + chunk_size], bank).pow_(2)
        top = torch.topk(d2, need, dim=1, largest=False).values  # sorted ascending
        out.append(top[:, 1:] if exclude_self else top)
    if not out:
        return queries.new_zeros(0, k)
    return torch.cat(out).clamp_min_(0.0)


class KNNScorer(Scorer):
    """Distance to the k-th nearest ID bank vector (``reduction="kth"``) or mean distance to the k nearest
    (``reduction="mean"``); Euclidean. Higher = farther from the ID data = more OOD."""

    needs_fit = True

    def __init__(self, name: str = "knn", key: str = "features", k: int = 5, reduction: str = "kth",
                 chunk_size: Optional[int] = None):
        if reduction not in ("kth", "mean"):
            raise ValueError(f"KNNScorer reduction must be 'kth' or 'mean', got {reduction!r}")
        if k < 1:
            raise ValueError(f"KNNScorer k must be >= 1, got {k}")
        self.name, self.key, self.k, self.reduction, self.chunk_size = name, key, k, reduction, chunk_size
        self.requires = (key,)
        self.bank: Optional[torch.Tensor] = None

    def fit(self, outputs: Outputs) -> None:
        bank = get_features(outputs, self.key, self.name)
        if bank.shape[0] < self.k:
            raise ValueError(f"scorer {self.name!r}: k={self.k} needs at least {self.k} fit vectors, got {bank.shape[0]}")
        self.bank = bank.detach()

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.bank is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        q = get_features(outputs, self.key, self.name)
        d = knn_sq_distances(q, self.bank, self.k, chunk_size=self.chunk_size).sqrt()
        return d[:, -1] if self.reduction == "kth" else d.mean(1)
