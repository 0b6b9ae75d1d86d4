"""Keys land on the partitions Kafka's Java partitioner picks (pure)."""

from __future__ import annotations

import ctypes

import pytest

from processors.partitioning import murmur2, partition_for

# Kafka's own test vectors for Utils.murmur2 (signed 32-bit results).
VECTORS = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), VECTORS.items())
def test_murmur2_matches_kafka(key: str, expected: int) -> None:
    assert ctypes.c_int32(murmur2(key.encode())).value == expected


def test_partition_is_the_positive_hash_modulo_the_count() -> None:
    for key in VECTORS:
        hashed = murmur2(key.encode()) & 0x7FFFFFFF
        assert partition_for(key.encode(), 7) == hashed % 7
