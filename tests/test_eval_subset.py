"""The evaluation subset: seeded, and spread over the whole val split (not its first files)."""

from __future__ import annotations

import numpy as np

from meloformer.evaluate.evaluate import spread_subset


def test_subset_spans_the_split_and_follows_the_seed():
    n, k = 1000, 64
    a = spread_subset(n, k, seed=0)
    assert len(a) == k and len(set(a.tolist())) == k and (np.diff(a) > 0).all()
    assert a.min() < n / k and a.max() >= n - n / k  # first and last strata both drawn
    # Every stratum of n/k consecutive songs (e.g. one source folder) gives one song.
    strata = np.floor(a * k / n).astype(int)
    assert strata.tolist() == list(range(k))
    assert np.array_equal(a, spread_subset(n, k, seed=0))
    assert not np.array_equal(a, spread_subset(n, k, seed=1))


def test_subset_of_a_small_split_is_all_of_it():
    assert spread_subset(5, 64, seed=3).tolist() == [0, 1, 2, 3, 4]
    assert sorted(spread_subset(65, 64, seed=3).tolist()) == spread_subset(65, 64, 3).tolist()
