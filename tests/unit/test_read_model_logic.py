"""The pure parts of the read-model methods: head tracking, row verdicts, pacing, sentinels."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest

from probes.read_models.audit import Pacer, Verdict, judge
from probes.read_models.checkpoint import HeadTracker
from probes.read_models.cql import DeclaredCqlError, position_seconds
from probes.read_models.sentinel import matches, sentinel_binds

FIELDS = {"total": "total", "status": "status"}


def source(written: float, **fields: object) -> dict[str, object]:
    return {"written_at": int(written * 1e6), "total": 10, "status": "PENDING", **fields}


# --- checkpoint ------------------------------------------------------------------------


def test_no_event_and_no_checkpoint_is_unknown_not_zero() -> None:
    assert HeadTracker().update(None, None, now=100.0) is None


def test_caught_up_is_zero_however_old_the_last_event() -> None:
    tracker = HeadTracker()
    # The last event is an hour old, and projected: idle is not lag.
    assert tracker.update(head=100.0, checkpoint=100.0, now=3700.0) == 0.0


def test_stuck_projector_lag_grows_one_second_per_second() -> None:
    tracker = HeadTracker()
    assert tracker.update(100.0, 100.0, now=100.5) == 0.0
    # The projector stops at 100; events keep arriving, each seen as the head. The oldest
    # unprojected one came after 100.5, when 100 was still the newest.
    lags = [tracker.update(100.0 + t, 100.0, now=100.0 + t + 0.05) for t in range(1, 11)]
    assert lags[0] == pytest.approx(0.55)
    assert [round(b - a, 6) for a, b in itertools.pairwise(lags)] == [1.0] * 9


def test_lag_after_an_idle_gap_counts_from_the_first_new_event_not_the_checkpoint() -> None:
    tracker = HeadTracker()
    tracker.update(100.0, 100.0, now=101.0)
    # An hour of silence, then an event at 3700 the projector has not reached yet.
    assert tracker.update(3700.0, 100.0, now=3700.2) == pytest.approx(0.2)


def test_a_restarted_projector_drops_the_lag_as_it_passes_heads() -> None:
    tracker = HeadTracker()
    for t in range(10):
        tracker.update(200.0 + t, 199.0, now=200.1 + t)
    # It has passed heads seen up to 205.1, and its checkpoint is newer than that: events
    # kept coming, so the oldest unprojected one follows the checkpoint.
    assert tracker.update(210.0, 205.5, now=210.1) == pytest.approx(210.1 - 205.5)
    assert tracker.update(211.0, 211.0, now=211.1) == 0.0


def test_steady_traffic_reads_the_checkpoint_age_not_a_quantized_bound() -> None:
    # Ten events a second, projected once 0.5 s old, read once a second.
    tracker = HeadTracker()
    lags = [tracker.update(head=t - 0.01, checkpoint=t - 0.55, now=t)
            for t in (100.0, 101.0, 102.0, 103.0)]
    assert lags[0] == pytest.approx(0.01)  # no history yet: the lower bound
    assert lags[1:] == pytest.approx([0.55] * 3)


def test_after_a_gap_in_the_readings_only_the_lower_bound_is_claimed() -> None:
    tracker = HeadTracker(interval=1.0)
    for t in (100.0, 101.0):
        tracker.update(head=t - 0.01, checkpoint=t - 0.55, now=t)
    # Twenty seconds without a reading (the runs failed): what happened then is unknown.
    assert tracker.update(head=120.99, checkpoint=101.0, now=121.0) == pytest.approx(0.01)


def test_a_first_event_after_an_idle_spell_is_dated_by_itself() -> None:
    tracker = HeadTracker()
    for t in (100.0, 101.0, 102.0):
        assert tracker.update(head=50.0, checkpoint=50.0, now=t) == 0.0
    # A new event at 102.7, not yet projected: its own age, not the checkpoint's (52 s).
    assert tracker.update(head=102.7, checkpoint=50.0, now=103.0) == pytest.approx(0.3)


def test_checkpoint_ahead_of_the_head_is_not_negative_lag() -> None:
    assert HeadTracker().update(head=50.0, checkpoint=60.0, now=70.0) == 0.0


def test_thinning_keeps_the_oldest_head_so_the_bound_holds() -> None:
    tracker = HeadTracker(max_entries=8)
    for t in range(100):
        lag = tracker.update(1000.0 + t, 999.0, now=1000.0 + t)
    assert len(tracker.heads) <= 9
    assert lag == pytest.approx(99.0)


def test_positions_from_timeuuid_timestamp_and_writetime() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    seconds = moment.timestamp()
    from cassandra.util import uuid_from_time

    assert position_seconds(uuid_from_time(seconds)) == pytest.approx(seconds, abs=1e-6)
    assert position_seconds(moment.replace(tzinfo=None)) == seconds  # the driver's naive UTC
    assert position_seconds(int(seconds * 1e6)) == seconds
    with pytest.raises(DeclaredCqlError, match="TIMEUUID"):
        position_seconds(uuid.uuid4())
    with pytest.raises(DeclaredCqlError, match="got str"):
        position_seconds("yesterday")


# --- audit verdicts --------------------------------------------------------------------


def test_present_and_equal_is_synced_with_the_write_time_difference_as_lag() -> None:
    verdict = judge(source(100.0), source(102.5), FIELDS, now=200.0, grace=30.0)
    assert verdict.verdict is Verdict.SYNCED and verdict.lag == pytest.approx(2.5)


def test_a_read_model_written_before_the_source_but_equal_has_no_negative_lag() -> None:
    verdict = judge(source(100.0), source(99.0), FIELDS, now=200.0, grace=30.0)
    assert verdict.verdict is Verdict.SYNCED and verdict.lag == 0.0


def test_absent_within_grace_is_pending_with_its_age_then_missing() -> None:
    young = judge(source(100.0), None, FIELDS, now=110.0, grace=30.0)
    assert young.verdict is Verdict.PENDING and young.lag == pytest.approx(10.0)
    assert judge(source(100.0), None, FIELDS, now=130.0, grace=30.0).verdict is Verdict.MISSING


def test_an_older_differing_row_is_pending_then_stale() -> None:
    old_row = source(90.0, status="NEW")
    pending = judge(source(100.0), old_row, FIELDS, now=105.0, grace=30.0)
    assert pending.verdict is Verdict.PENDING and pending.differs == ("status",)
    assert judge(source(100.0), old_row, FIELDS, now=131.0, grace=30.0).verdict is Verdict.STALE


def test_a_newer_differing_row_is_a_mismatch_at_once() -> None:
    wrong = source(100.2, total=11)
    verdict = judge(source(100.0), wrong, FIELDS, now=100.5, grace=30.0)
    assert verdict.verdict is Verdict.MISMATCH and verdict.differs == ("total",)


def test_fields_may_be_mapped_to_other_column_names() -> None:
    target = {"written_at": int(101e6), "amount": 10}
    verdict = judge(source(100.0), target, {"amount": "total"}, now=120.0, grace=30.0)
    assert verdict.verdict is Verdict.SYNCED


# --- pacing ----------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_pacer_spaces_requests_and_never_bursts_after_idling() -> None:
    clock = FakeTime()
    pacer = Pacer(4.0, clock.monotonic, clock.sleep)
    starts = []
    for _ in range(9):
        await pacer.wait()
        starts.append(clock.now)
        pacer.sent()
    assert starts == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    clock.now += 60.0  # idle for a minute: no saved-up burst afterwards
    for _ in range(2):
        await pacer.wait()
        pacer.sent()
    assert clock.now == pytest.approx(62.25)
    assert pacer.next_slot == pytest.approx(62.5)


async def test_pacer_counts_the_gap_from_a_late_send() -> None:
    clock = FakeTime()
    pacer = Pacer(4.0, clock.monotonic, clock.sleep)
    await pacer.wait()
    clock.now += 0.2  # the request went out 0.2 s after its slot
    pacer.sent()
    await pacer.wait()
    assert clock.now == pytest.approx(0.45)


# --- sentinel --------------------------------------------------------------------------


def test_sentinel_binds_render_params_and_match_by_value() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    binds = sentinel_binds("east-1", 42, now, {"payload": '{"status": "$sentinel_tag"}'})
    assert binds["sentinel_tag"] == "east-1-42"
    assert binds["payload"] == '{"status": "east-1-42"}'
    assert binds["sentinel_time"].microsecond == 123000  # what a CQL timestamp keeps
    assert binds["sentinel_date"].isoformat() == "2024-05-01"
    assert binds["sentinel_id"].version == 1
    assert matches({"status": "east-1-42"}, {"status": "sentinel_tag"}, binds)
    assert not matches({"status": "east-1-41"}, {"status": "sentinel_tag"}, binds)
    assert matches({"anything": 1}, {}, binds)


def test_the_rows_an_audit_remembers_are_the_last_ones_judged_and_no_more() -> None:
    import uuid

    from probes.read_models.audit import Remembered

    keys = [(uuid.uuid4(), 1_700_000_000_000_000 + i) for i in range(250)]
    remembered = Remembered(capacity=100)
    for key in keys:
        remembered.add(key)
    remembered.add(keys[-1])  # judged again: still one
    assert len(remembered) == 100
    assert all(key in remembered for key in keys[150:])
    assert not any(key in remembered for key in keys[:150])
    rewritten = (keys[-1][0], keys[-1][1] + 1)  # the same row written again is new
    assert rewritten not in remembered
