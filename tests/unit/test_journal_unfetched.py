"""When the Webhooks Journal source gives up an entry whose file never downloads (`cdc.hubspot.journal`):
every read of a batch fetches again the entries before the broken one, and their success must not start
the broken entry's count over, or a broken entry behind others would be retried for ever."""

from __future__ import annotations

from cdc.hubspot.journal import UNFETCHABLE_AFTER, Unfetched


def reads_until_given_up(batch: list[str], broken: str, *, limit: int = 50) -> int | None:
    """How many reads of ``batch`` it takes to give ``broken`` up (each read fetches the entries in order
    and stops at the broken one, as `JournalSource._entries` does), or None within ``limit``."""
    count = Unfetched()
    for read in range(1, limit + 1):
        for offset in batch:
            if offset != broken:
                count.fetched(offset)
            elif count.failed(offset):
                return read
            else:
                break
    return None


def test_a_broken_entry_behind_good_ones_is_given_up_after_its_reads() -> None:
    assert reads_until_given_up(["a", "b", "broken", "c"], "broken") == UNFETCHABLE_AFTER
    assert reads_until_given_up(["broken", "c"], "broken") == UNFETCHABLE_AFTER


def test_an_entry_that_downloads_at_last_starts_its_count_over() -> None:
    count = Unfetched(after=3)
    assert not count.failed("x")
    assert not count.failed("x")
    count.fetched("x")  # a storage hiccup that ended
    assert not count.failed("x")
    assert not count.failed("x")
    assert count.failed("x")


def test_another_entry_failing_starts_a_count_of_its_own() -> None:
    count = Unfetched(after=2)
    assert not count.failed("x")
    assert not count.failed("y")
    assert count.failed("y")
