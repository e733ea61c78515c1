"""Ragged batches: B variable-length token rows as one flat array plus row lengths.

Objectives produce rows of different lengths (sentinels, dropped tokens, inserted masks). Holding a whole
batch as two contiguous arrays lets every objective and the feature converter work with a few vectorised
NumPy operations instead of a Python loop over rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Ragged:
    """A batch of B variable-length token sequences stored as flat values plus row lengths.

    Row i is ``values[offsets[i]:offsets[i + 1]]`` with ``offsets = [0, cumsum(lengths)]``.

    >>> r = Ragged.from_rows([[5, 6, 7], [], [8]])
    >>> r.values, r.lengths, r.offsets
    (array([5, 6, 7, 8], dtype=int32), array([3, 0, 1]), array([0, 3, 3, 4]))
    >>> r.append(1).to_list()
    [[5, 6, 7, 1], [1], [8, 1]]

    Attributes:
      values: [N] tokens of all rows, concatenated (int32).
      lengths: [B] int64 length of each row; ``lengths.sum() == N``.
    """

    values: np.ndarray
    lengths: np.ndarray

    def __post_init__(self):
        if self.values.ndim != 1 or self.lengths.ndim != 1:
            raise ValueError("Ragged values and lengths must be 1-D.")
        if int(self.lengths.sum()) != self.values.shape[0]:
            raise ValueError(f"lengths sum to {int(self.lengths.sum())} but there are {self.values.shape[0]} values.")

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """[B + 1] int64 start of each row in ``values`` (and the total length at the end)."""
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets

    @functools.cached_property
    def row_ids(self) -> np.ndarray:
        """[N] int64 row of each value."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @functools.cached_property
    def positions(self) -> np.ndarray:
        """[N] int64 position of each value within its row."""
        return np.arange(self.values.shape[0]) - np.repeat(self.offsets[:-1], self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def to_list(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]], dtype=np.int32) -> Ragged:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.concatenate([np.asarray(r, dtype=dtype) for r in rows]) if len(rows) else np.zeros(0, dtype)
        return cls(values.astype(dtype, copy=False), lengths)

    @classmethod
    def from_dense(cls, tokens: np.ndarray, keep: np.ndarray | None = None) -> Ragged:
        """Rows of a [B, L] array, keeping only the positions where ``keep`` [B, L] is True."""
        if keep is None:
            return cls(tokens.reshape(-1), np.full(tokens.shape[0], tokens.shape[1], dtype=np.int64))
        return cls(tokens[keep], keep.sum(axis=1, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        """The rows of all parts, in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.values for p in parts]), np.concatenate([p.lengths for p in parts]))

    def slice(self, start: int, stop: int) -> Ragged:
        """Rows ``start:stop`` (a view of ``values``, no copy)."""
        return Ragged(self.values[self.offsets[start] : self.offsets[stop]], self.lengths[start:stop])

    def take(self, rows: np.ndarray) -> Ragged:
        """Rows in the order given by the integer array ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        new_offsets = np.concatenate([[0], np.cumsum(lengths)])
        # Source index of output token j = its row's old start + (j - its row's new start).
        index = np.repeat(self.offsets[rows] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
        return Ragged(self.values[index], lengths)

    def replace_rows(self, rows: np.ndarray, new: Ragged) -> Ragged:
        """This batch with row ``rows[j]`` replaced by ``new``'s row j (rows distinct)."""
        source = np.arange(len(self), dtype=np.int64)
        source[rows] = len(self) + np.arange(len(rows))
        return Ragged.concat([self, new]).take(source)

    def dense(self, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """([B, max_len] tokens padded with ``pad``, [B, max_len] bool mask of the real tokens)."""
        width = int(self.lengths.max()) if len(self) else 0
        tokens = np.full((len(self), width), pad, dtype=self.values.dtype)
        valid = np.arange(width) < self.lengths[:, None]
        tokens[valid] = self.values
        return tokens, valid

    def append(self, token: int) -> Ragged:
        """Each row with ``token`` appended (used for EOS)."""
        lengths = self.lengths + 1
        ends = np.cumsum(lengths) - 1  # where the appended token of each row lands
        out = np.empty(self.values.shape[0] + len(self), dtype=self.values.dtype)
        is_new = np.zeros(out.shape[0], dtype=bool)
        is_new[ends] = True
        out[is_new] = token
        out[~is_new] = self.values
        return Ragged(out, lengths)


Examples = dict[str, Ragged]  # feature name -> Ragged, rows aligned
