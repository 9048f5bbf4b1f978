"""`streams.clients.partition_for` puts every key where aiokafka's default partitioner (the Java client's
murmur2) does: the work and parked topics line up partition by partition (`consumers.parked`), and a key
produced by any client lands on one partition, so a pair's changes keep their order (guarantee 4)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.clients import partition_for


@given(st.binary(max_size=80), st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=3))
def test_a_key_goes_where_the_default_partitioner_puts_it(key: bytes, count: int, repeat: int) -> None:
    partitions = list(range(count))
    for _ in range(repeat + 1):  # remembered hashes answer the same
        assert partition_for(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_key_lands_on_the_partition_the_java_client_picks() -> None:
    """Kafka's own ``Utils.murmur2`` answers (its UtilsTest: "21" -> -973932308, "foobar" -> -790332482),
    made positive and taken modulo the partition count, as Java producers place keys."""
    for key, java in ((b"21", -973932308), (b"foobar", -790332482)):
        for count in (6, 7, 12):
            partitions = list(range(count))
            assert partition_for(key, partitions, []) == (java & 0x7FFFFFFF) % count
            assert partition_for(bytearray(key), partitions, []) == (java & 0x7FFFFFFF) % count


def test_no_key_goes_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2], [2]) == 2
