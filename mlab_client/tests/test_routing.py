"""Bucketing and allocation: property tests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlab_client.contract import BUCKETS
from mlab_client.routing import Router, allocate, bucket_of, owners_from_ranges


@st.composite
def splits(draw):
    chosen = draw(st.lists(st.integers(1, 12), min_size=1, max_size=5, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(chosen) - 1, max_size=len(chosen) - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return dict(zip(chosen, weights, strict=True))


def _counts(ranges):
    counts = {}
    for start, end, version in ranges:
        counts[version] = counts.get(version, 0) + end - start
    return counts


def test_bucket_of_is_the_documented_hash():
    unit, salt = "user-42", "s4lt"
    expected = int.from_bytes(hashlib.sha256(b"s4lt:user-42").digest()[:8], "big") % BUCKETS
    assert bucket_of(unit, salt) == expected
    assert bucket_of(42, salt) == bucket_of("42", salt)


@settings(max_examples=300)
@given(split=splits())
def test_allocation_gives_each_version_exactly_its_share(split):
    ranges = allocate(split)
    assert {v: c for v, c in _counts(ranges).items()} == {v: w * 100 for v, w in split.items() if w}
    covered = sorted((s, e) for s, e, _ in ranges)
    assert covered[0][0] == 0 and covered[-1][1] == BUCKETS
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))


@settings(max_examples=300)
@given(first=splits(), second=splits())
def test_changing_the_split_moves_exactly_the_total_variation_distance(first, second):
    before = allocate(first)
    after = allocate(second, before)
    old, new = owners_from_ranges(before), owners_from_ranges(after)
    moved = sum(1 for a, b in zip(old, new, strict=True) if a != b)
    tv = sum(abs(first.get(v, 0) - second.get(v, 0)) for v in set(first) | set(second)) * 100 // 2
    assert moved == tv
    for version, weight in second.items():  # a version that keeps or grows its share keeps all its buckets
        if weight >= first.get(version, 0):
            assert all(n == version for o, n in zip(old, new, strict=True) if o == version)


@settings(max_examples=100)
@given(chain=st.lists(splits(), min_size=2, max_size=6))
def test_allocation_stays_exact_along_a_chain_of_changes(chain):
    ranges = allocate(chain[0])
    for split in chain[1:]:
        ranges = allocate(split, ranges)
        assert _counts(ranges) == {v: w * 100 for v, w in split.items() if w}


def test_allocation_is_deterministic():
    assert allocate({1: 90, 2: 10}) == allocate({1: 90, 2: 10}) == [(0, 9000, 1), (9000, 10000, 2)]
    assert allocate({1: 50, 2: 50}, allocate({1: 90, 2: 10})) == [(0, 5000, 1), (5000, 10000, 2)]


@pytest.mark.parametrize("bad", [{}, {1: 50}, {1: 101, 2: -1}])
def test_invalid_splits_are_refused(bad):
    with pytest.raises(ValueError):
        allocate(bad)


@settings(max_examples=50)
@given(split=splits(), units=st.lists(st.text(max_size=12), max_size=50), salt=st.text(max_size=8))
def test_router_follows_ranges_and_overrides_win(split, units, salt):
    ranges = allocate(split)
    overrides = {u: 99 for u in units[:3]}
    router = Router.from_config({"salt": salt, "allocation": [list(r) for r in ranges], "overrides": overrides})
    owners = owners_from_ranges(ranges)
    for unit in units:
        expected = overrides.get(unit, owners[bucket_of(unit, salt)])
        assert router.version_for(unit) == expected
