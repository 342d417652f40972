"""Frequent itemsets of baskets, counted level by level, in array operations only.

Pairs are enumerated basket by basket as integer keys and counted (:func:`_frequent_pairs`),
among the items frequent on their own and in the baskets holding two of them or more; the
largest baskets, which would make half the keys, add their counts on bitsets instead, for the
pairs the other baskets leave within reach of the threshold. Larger
itemsets are candidates whose every subset is frequent (Apriori's pruning), counted on packed
bitsets: each item of a frequent pair keeps one bit per basket holding three such items or
more, and an itemset's count is the popcount of its items' AND.

Itemsets of one size are rows of sorted item indices in lexicographic order. A row is found by
its *prefix id* (for a pair, its first item; for a larger itemset, the position of its first
``k - 1`` items among the frequent ``(k - 1)``-sets), so that ``prefix id x n_items + last
item`` is one sorted integer key per level (:meth:`FrequentItemsets.find`); candidates, their
pruning and the rules' antecedent counts are all searches of such keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np
import scipy.sparse as sp

from features.baskets import Baskets

__all__ = ["FrequentItemsets", "Itemsets", "frequent_itemsets", "item_counts"]

#: Pair counts held at once (first items of a block x all items; 4 MiB of int64).
_PAIR_BINS = 1 << 19
#: Pair keys held at once before they are counted (16 MiB of int64: small enough to be reused
#: from the allocator's heap between chunks rather than mapped and faulted in afresh, which
#: costs more than the extra counting passes).
_PAIR_KEYS = 1 << 21
#: Pair keys are sorted rather than counted into bins when there are this many times fewer
#: of them than bins (stores of small baskets and many items).
_SPARSE_KEYS = 8
#: The largest baskets (holding about half the pair keys) whose pairs are counted on bitsets
#: rather than enumerated are at most this many (64 words of bits an item).
_LARGE_BASKETS = 4096
#: Candidate x basket-word cells ANDed at once (bounds the temporary memory: 128 MiB).
_CANDIDATE_WORDS_PER_CHUNK = 1 << 24


@dataclass(frozen=True)
class Itemsets:
    """Frequent itemsets of one size: sorted item indices per row, rows in lexicographic order,
    their basket counts, and the level's search keys (prefix id x n_items + last item)."""

    items: np.ndarray
    counts: np.ndarray
    keys: np.ndarray


@dataclass(frozen=True)
class FrequentItemsets:
    """Every itemset in at least ``min_count`` baskets, by size: ``levels[0]`` the single
    items, ``levels[1]`` the pairs, and so on (levels without itemsets are left out)."""

    n_baskets: int
    n_items: int
    min_count: int
    item_counts: np.ndarray
    levels: list[Itemsets]

    def find(self, rows: np.ndarray) -> np.ndarray:
        """The position of each row (sorted item indices, k of them) among the frequent
        k-itemsets, -1 where it is not one."""
        size = rows.shape[1]
        if size == 1:
            return np.where(self.item_counts[rows[:, 0]] >= self.min_count, rows[:, 0], -1)
        found = np.ones(len(rows), dtype=bool)
        ids = rows[:, 0]
        for column in range(1, size):
            if column >= len(self.levels):
                return np.full(len(rows), -1, dtype=np.int64)
            keys = self.levels[column].keys
            wanted = ids * self.n_items + rows[:, column]
            ids = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
            found &= len(keys) > 0
            found[found] = keys[ids[found]] == wanted[found]
        return np.where(found, ids, -1)

    def counts_of(self, rows: np.ndarray) -> np.ndarray:
        """Basket counts of rows that are frequent itemsets (every row must be one)."""
        if rows.shape[1] == 1:
            return self.item_counts[rows[:, 0]]
        return self.levels[rows.shape[1] - 1].counts[self.find(rows)]


def item_counts(baskets: Baskets) -> np.ndarray:
    """The baskets each item is in."""
    return np.bincount(baskets.matrix.indices, minlength=baskets.n_items).astype(np.int64)


def frequent_itemsets(
    baskets: Baskets, min_count: int, max_size: int, *, max_pairs: int | None = None
) -> FrequentItemsets:
    """Itemsets of up to ``max_size`` (2 or more) items in at least ``min_count`` baskets. With
    ``max_pairs``, the count threshold first rises to the least count that at most that many
    pairs reach (the pairs are counted once, at ``min_count``, and cut)."""
    counts = item_counts(baskets)
    frequent = np.flatnonzero(counts >= min_count)
    # The baskets that can hold a frequent pair, by the positions of their frequent items.
    rows = _restricted(baskets.matrix, frequent, 2)
    pairs = _frequent_pairs(rows, frequent, baskets.n_items, min_count)
    if max_pairs is not None and len(pairs.counts) > max_pairs:
        min_count = int(np.sort(pairs.counts)[::-1][max_pairs]) + 1
        keep = pairs.counts >= min_count
        pairs = Itemsets(pairs.items[keep], pairs.counts[keep], pairs.keys[keep])
    single = np.flatnonzero(counts >= min_count)
    singles = Itemsets(single[:, None], counts[single], single)
    found = FrequentItemsets(baskets.n_baskets, baskets.n_items, min_count, counts, [singles])
    if not len(pairs.counts):
        return found
    found.levels.append(pairs)
    if max_size > 2:
        # Larger itemsets are made of items of frequent pairs, in baskets of three of them or
        # more: only those need basket bits.
        paired = np.unique(pairs.items)
        bits = _bitsets(_restricted(rows, np.searchsorted(frequent, paired), 3))
        position = np.full(baskets.n_items, -1, dtype=np.int64)
        position[paired] = np.arange(len(paired))
        while len(found.levels) < max_size:
            candidates, prefixes = _candidates(found)
            if not len(candidates):
                break
            counts_now = _count(bits, position[candidates])
            keep = counts_now >= min_count
            if not keep.any():
                break
            keys = prefixes[keep] * baskets.n_items + candidates[keep, -1]
            found.levels.append(Itemsets(candidates[keep], counts_now[keep], keys))
    return found


def _pair_level(pairs: np.ndarray, counts: np.ndarray, n_items: int) -> Itemsets:
    return Itemsets(pairs, counts, pairs[:, 0] * n_items + pairs[:, 1])


def _restricted(matrix: sp.csr_matrix, columns: np.ndarray, min_items: int) -> sp.csr_matrix:
    """The rows of ``matrix`` (baskets) holding at least ``min_items`` of ``columns`` (sorted
    indices), by the positions of those columns, indices sorted: the only baskets where
    itemsets of that many of them can be. On stores of small baskets most baskets drop out,
    and so does the work."""
    position = np.full(matrix.shape[1], -1, dtype=np.int64)
    position[columns] = np.arange(len(columns))
    kept_columns = position[matrix.indices]
    kept = kept_columns >= 0
    running = np.r_[0, np.cumsum(kept)]
    sizes = running[matrix.indptr[1:]] - running[matrix.indptr[:-1]]
    chosen = sizes >= min_items
    kept &= np.repeat(chosen, np.diff(matrix.indptr))
    rows = sp.csr_matrix(
        (np.ones(int(kept.sum()), dtype=bool), kept_columns[kept],
         np.r_[0, np.cumsum(sizes[chosen])]),
        shape=(int(chosen.sum()), len(columns)),
    )  # fmt: skip
    rows.sort_indices()
    return rows


def _frequent_pairs(
    rows: sp.csr_matrix,
    items: np.ndarray,
    n_items: int,
    min_count: int,
    *,
    max_bins: int = _PAIR_BINS,
    max_keys: int = _PAIR_KEYS,
) -> Itemsets:
    """Pairs (i < j) of ``items`` (sorted indices; ``rows``: baskets by their positions, as
    :func:`_restricted` gives) bought together in at least ``min_count`` baskets, in
    lexicographic order.

    Each basket's pairs are enumerated once, as integer keys ``position(i) x len(items) +
    position(j)`` (:class:`_Entries`), and equal keys counted: by ``np.bincount``, or by sorting
    them where they are few for the counts (stores of small baskets and many items). That is
    half the work of the co-occurrence product ``B^T B``, which makes every pair twice. The
    counts are made for a block of first items at a time (at most ``max_bins`` counts, one
    64-bit integer each), with at most ``max_keys`` keys held at once.

    A basket of k items makes k (k - 1) / 2 keys, so that a few large baskets (wholesale orders
    of hundreds of items) make most of them. The largest baskets, holding about half the keys
    (:func:`_largest_baskets`), are not enumerated when the counts are binned: a pair is in at
    most as many of them as the rarer of its items, so only the pairs whose count in the other
    baskets plus that bound reaches ``min_count`` can be frequent, and their counts in the large
    baskets are popcounts of the large baskets' bitsets (unless those candidates would cost more
    than the keys they spare).
    """
    if not rows.nnz:
        return _pair_level(np.empty((0, 2), np.int64), np.empty(0, np.int64), n_items)
    n = len(items)
    block = max(1, max_bins // n)
    large = _largest_baskets(np.diff(rows.indptr))
    small_entries = _Entries.of(rows[~large], n, block)
    large_rows = rows[large]
    large_entries = _Entries.of(large_rows, n, block)
    bits = _bitsets(large_rows)
    # The bound of a pair's count in the large baskets: its rarer item's count there.
    large_counts = np.bincount(large_rows.indices, minlength=n)
    firsts, seconds, counts = [], [], []
    for index, start in enumerate(range(0, n, block)):
        stop = min(start + block, n)
        width = (stop - start) * n
        small_keys, large_keys = small_entries.block_keys[index], large_entries.block_keys[index]
        if (small_keys + large_keys) * _SPARSE_KEYS < width:
            # Few keys for the counts: sorting them beats counting into mostly empty bins.
            keys = [*small_entries.keys(index, max_keys), *large_entries.keys(index, max_keys)]
            found, tally = np.unique(np.concatenate([np.empty(0, np.int64), *keys]),
                                     return_counts=True)  # fmt: skip
            frequent = tally >= min_count
            found, tally = found[frequent], tally[frequent]
        else:
            tally = _binned(small_entries.keys(index, max_keys), width)
            if large_keys:
                bound = tally + np.minimum(large_counts[start:stop, None], large_counts).ravel()
                upper = np.arange(n) > np.arange(start, stop)[:, None]
                candidates = np.flatnonzero((bound >= min_count) & upper.ravel())
                if len(candidates) * bits.shape[1] <= large_keys:
                    tally[candidates] += _count(
                        bits, np.column_stack([start + candidates // n, candidates % n])
                    )
                else:
                    tally += _binned(large_entries.keys(index, max_keys), width)
            found = np.flatnonzero(tally >= min_count)
            tally = tally[found]
        firsts.append(start + found // n)
        seconds.append(found % n)
        counts.append(tally)
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    pairs = np.column_stack([items[first], items[second]]).astype(np.int64)
    return _pair_level(pairs, np.concatenate(counts).astype(np.int64), n_items)


def _largest_baskets(sizes: np.ndarray, most: int = _LARGE_BASKETS) -> np.ndarray:
    """Which baskets are the largest ones that hold at most half of all pair keys (the baskets
    of sizes from the least size whose baskets and larger ones do), at most ``most`` of them
    (the largest first)."""
    keys_by_size = np.bincount(sizes, weights=sizes * (sizes - 1) / 2)
    from_size = np.cumsum(keys_by_size[::-1])[::-1]  # keys of the baskets of each size or more
    least = int(np.searchsorted(-from_size, -from_size[0] / 2)) if len(from_size) else 0
    large = sizes >= max(least, 2)
    if large.sum() > most:
        large[:] = False
        large[np.argsort(-sizes, kind="stable")[:most]] = True
    return large


def _binned(chunks: Iterator[np.ndarray], width: int) -> np.ndarray:
    """The count of each key in ``range(width)`` over the chunks of keys."""
    tally = np.zeros(width, dtype=np.int64)
    for number, keys in enumerate(chunks):
        counted = np.bincount(keys, minlength=width)
        tally = counted if not number else np.add(tally, counted, out=tally)
    return tally


@dataclass(frozen=True)
class _Entries:
    """The entries (basket, item) of some baskets, ready to make pair keys block by block.

    An entry pairs with each entry after it in its basket. With the entries of a block of first
    items ordered by how many follow them, most first, those with at least ``d`` followers are a
    prefix, so that the pairs of every entry with its ``d``-th follower are one array operation.
    The order is made on the first call for keys: the large baskets' keys are rarely needed.
    """

    positions: np.ndarray
    followers: np.ndarray
    n: int
    block: int
    #: Keys of each block (one per entry and follower).
    block_keys: np.ndarray

    @classmethod
    def of(cls, rows: sp.csr_matrix, n: int, block: int) -> _Entries:
        positions = rows.indices.astype(np.int64)
        followers = np.repeat(rows.indptr[1:], np.diff(rows.indptr)) - np.arange(rows.nnz) - 1
        n_blocks = math.ceil(n / block)
        block_keys = np.bincount(positions // block, weights=followers, minlength=n_blocks)
        return cls(positions, followers, n, block, block_keys.astype(np.int64))

    @cached_property
    def _order(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """The entries by block of their item, then most followers first (one stable sort, a
        radix sort when the key fits 16 bits); each block's start in that order; and for each
        block, how many of its entries have a d-th follower (d = 1, 2, ...)."""
        most = int(self.followers.max(initial=0))
        sort_key = self.positions // self.block * (most + 1) + (most - self.followers)
        order = np.argsort(
            sort_key.astype(np.min_scalar_type(int(sort_key.max(initial=0)))), kind="stable"
        )
        bounds = np.searchsorted(
            self.positions[order] // self.block, np.arange(len(self.block_keys) + 1)
        )
        with_followers = []
        for begin, end in pairwise(bounds):
            after = self.followers[order[begin:end]]
            most_here = int(after[0]) if len(after) else 0
            with_followers.append(
                np.searchsorted(-after, -np.arange(1, most_here + 1), side="right")
            )
        return order, bounds, with_followers

    def keys(self, index: int, max_keys: int) -> Iterator[np.ndarray]:
        """The pair keys of block ``index``, (first position - the block's start) x n +
        second position, at most ``max_keys`` at a time (or one follower distance's, when
        that is more)."""
        order, bounds, with_followers = self._order
        entries = order[bounds[index] : bounds[index + 1]]
        first_keys = (self.positions[entries] - index * self.block) * self.n
        with_follower = with_followers[index]
        ends = np.cumsum(with_follower)
        distance = 0
        while distance < len(with_follower):
            done = int(ends[distance - 1]) if distance else 0
            stop = max(distance + 1, int(np.searchsorted(ends, done + max_keys, side="right")))
            keys = np.empty(int(ends[stop - 1]) - done, dtype=np.int64)
            at = 0
            for offset, count in enumerate(with_follower[distance:stop].tolist(), distance + 1):
                # positions[offset:][entry]: the position of the entry's offset-th follower.
                np.add(first_keys[:count], self.positions[offset:][entries[:count]],
                       out=keys[at : at + count])  # fmt: skip
                at += count
            yield keys
            distance = stop


def _bitsets(rows: sp.csr_matrix) -> np.ndarray:
    """One row of packed basket bits per column of ``rows`` (uint64 words), ORed straight
    from the nonzeros: memory is the packed words only (columns x baskets / 8 bytes)."""
    n_words = max(1, math.ceil(rows.shape[0] / 64))
    columns = rows.tocsc()
    columns.sort_indices()
    basket = columns.indices.astype(np.int64)
    # Cells (column, word) in increasing order: each word ORs a run of the nonzeros.
    cell = np.repeat(np.arange(rows.shape[1], dtype=np.int64), np.diff(columns.indptr)) * n_words
    cell += basket // 64
    runs = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]]) if len(cell) else cell
    bits = np.zeros(rows.shape[1] * n_words, dtype=np.uint64)
    shifted = np.left_shift(np.uint64(1), (basket % 64).astype(np.uint64))
    bits[cell[runs]] = np.bitwise_or.reduceat(shifted, runs) if len(runs) else 0
    return bits.reshape(rows.shape[1], n_words)


def _candidates(found: FrequentItemsets) -> tuple[np.ndarray, np.ndarray]:
    """Itemsets one item larger than the last level whose every subset is frequent, with the
    position of each one's prefix (all but its last item) in that level: the joins of two
    itemsets of the level that share all but their last item, rows in lexicographic order."""
    level = found.levels[-1]
    size = level.items.shape[1]
    prefix_ids = level.keys // found.n_items
    starts = np.flatnonzero(np.r_[True, prefix_ids[1:] != prefix_ids[:-1]])
    group_sizes = np.diff(np.r_[starts, len(prefix_ids)])
    # Every row joins each later row of its group: (first, second) row positions.
    later = np.repeat(starts + group_sizes, group_sizes) - np.arange(len(prefix_ids)) - 1
    first = np.repeat(np.arange(len(prefix_ids)), later)
    offsets = np.cumsum(later) - later
    second = np.arange(len(first)) - np.repeat(offsets, later) + first + 1
    candidates = np.column_stack([level.items[first], level.items[second, -1]])
    # Subsets without one of the first size - 1 items must be frequent too (the two without
    # the last or the second last item are the joined rows themselves).
    known = np.ones(len(candidates), dtype=bool)
    for dropped in range(size - 1):
        subsets = np.delete(candidates[known], dropped, axis=1)
        known[known] = found.find(subsets) >= 0
    return candidates[known], first[known]


def _count(bits: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Baskets holding every item of each candidate (rows of positions into ``bits``)."""
    per_chunk = max(1, _CANDIDATE_WORDS_PER_CHUNK // (bits.shape[1] * candidates.shape[1]))
    counts = np.empty(len(candidates), dtype=np.int64)
    for start in range(0, len(candidates), per_chunk):
        chunk = candidates[start : start + per_chunk]
        common = bits[chunk[:, 0]]
        for column in range(1, chunk.shape[1]):
            common &= bits[chunk[:, column]]
        counts[start : start + per_chunk] = np.bitwise_count(common).sum(axis=1)
    return counts
