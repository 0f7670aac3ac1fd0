"""fan_out and pipeline: exact delivery, closing downstream, first-error propagation, cancel."""

from __future__ import annotations

import collections
import itertools
import sys
import threading
import time

import chanpool
import pytest
from helpers import assert_clean_exit, native_thread_names, run_py, wait_until, watchdog
from hypothesis import given, settings
from hypothesis import strategies as st


def stage_threads() -> int:
    return sum(1 for n in native_thread_names() if n.startswith("chanpool-stage"))


def drain(ch):
    return watchdog(lambda: list(ch), what="draining the output")


# ------------------------------------------------------------------------------ delivery


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_fan_out_delivers_every_result_exactly_once(workers):
    for _ in range(5):
        out = chanpool.fan_out(range(5000), lambda x: x * 3, workers)
        got = drain(out)
        assert collections.Counter(got) == collections.Counter(x * 3 for x in range(5000))
        assert out.closed


def test_fan_out_from_a_channel_fed_by_several_producers():
    src = chanpool.Channel(16)
    out = chanpool.fan_out(src, lambda x: -x, workers=3, capacity=8)

    def produce(base):
        for i in range(1000):
            src.send(base + i)

    producers = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in producers:
        t.start()
    result = {}
    consumer = threading.Thread(target=lambda: result.setdefault("got", list(out)))
    consumer.start()
    for t in producers:
        t.join()
    src.close()  # closing the input is what ends the output
    consumer.join(60)
    assert not consumer.is_alive()
    assert sorted(result["got"]) == sorted(-x for x in range(4000))


def test_one_worker_keeps_order_through_every_stage():
    out = chanpool.pipeline(range(3000), lambda x: x + 1, lambda x: x * 2, str, capacity=4)
    assert drain(out) == [str((x + 1) * 2) for x in range(3000)]


def test_stages_with_their_own_worker_counts():
    out = chanpool.pipeline(
        range(2000), (lambda x: x + 1, 4), lambda x: x * 2, (abs, 3), workers=2, capacity=None
    )
    assert sorted(drain(out)) == [(x + 1) * 2 for x in range(2000)]


def test_empty_source_closes_the_output():
    assert drain(chanpool.fan_out([], abs)) == []
    src = chanpool.Channel()
    src.close()
    assert drain(chanpool.pipeline(src, abs, abs)) == []


def blocked_sending(n: int) -> bool:
    """Exactly n stage workers sit in _Stage.send (inside its native select), seen for 50 ms."""
    from chanpool._pipeline import _Stage

    code = _Stage.send.__code__
    since = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        frames = sys._current_frames().values()
        if sum(f.f_code is code for f in frames) == n:
            since = since or time.monotonic()
            if time.monotonic() - since >= 0.05:
                return True
        else:
            since = None
        time.sleep(0.001)
    return False


def test_unbuffered_pipeline_channels_hold_nothing():
    # capacity=0 makes every channel between stages unbuffered: with nobody reading, the first
    # stage has run exactly twice (the item the second stage is blocked sending, and the one it
    # is blocked sending itself); a one-slot inner channel would let it run a third time.
    for _ in range(5):
        calls: list[int] = []

        def first(x, calls=calls):
            calls.append(x)
            return x

        out = chanpool.pipeline(itertools.count(), first, abs, capacity=0)
        assert blocked_sending(2)
        assert calls == [0, 1]
        assert out.recv(timeout=60) == 0
        assert blocked_sending(2)
        assert calls == [0, 1, 2]
        out.close()
        wait_until(lambda: stage_threads() == 0, what="stage threads to exit")


def test_stage_threads_end_with_the_pipeline():
    for _ in range(10):
        drain(chanpool.pipeline(range(100), abs, (abs, 3)))
    wait_until(lambda: stage_threads() == 0, what="stage threads to exit")


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(st.integers(), max_size=300),
    workers=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    capacity=st.one_of(st.none(), st.integers(0, 8)),
    from_channel=st.booleans(),
)
def test_property_no_item_lost_or_duplicated(items, workers, capacity, from_channel):
    if from_channel:
        src = chanpool.Channel(None)
        for x in items:
            src.send(x)
        src.close()
    else:
        src = items

    def tag(k):
        return lambda x: (x, k)

    stages = [(tag(k), w) for k, w in enumerate(workers)]
    out = chanpool.pipeline(src, *stages, capacity=capacity)
    got = drain(out)

    def expected(x):
        for k in range(len(workers)):
            x = (x, k)
        return x

    assert collections.Counter(got) == collections.Counter(expected(x) for x in items)
    if all(w == 1 for w in workers):
        assert got == [expected(x) for x in items]


# ------------------------------------------------------------------------------ errors


def test_first_error_reaches_the_consumer_and_stops_everything():
    calls = []

    def boom(x):
        calls.append(x)
        if x == 500:
            raise ValueError("item 500")
        return x

    for workers in (1, 4):
        calls.clear()
        out = chanpool.pipeline(itertools.count(), (boom, workers), (abs, 2))
        got = []
        with pytest.raises(ValueError, match="item 500"):
            for x in out:
                got.append(x)
        assert 500 not in got and len(got) == len(set(got))
        # The error stays: every later receive raises it too.
        with pytest.raises(ValueError, match="item 500"):
            out.recv(5)
        # An infinite source was stopped: the stages ended.
        wait_until(lambda: stage_threads() == 0, what="stages to stop after the error")


def test_input_closed_with_an_error_propagates_it():
    src = chanpool.Channel(None)
    for i in range(10):
        src.send(i)
    src.close(KeyError("upstream"))
    out = chanpool.pipeline(src, abs, abs)
    got = []
    with pytest.raises(KeyError, match="upstream"):
        for x in out:
            got.append(x)
    assert got == list(range(10))  # everything before the error, in order (one worker)


def test_source_iterator_error_propagates():
    def gen():
        yield from range(5)
        raise OSError("disk gone")

    out = chanpool.fan_out(gen(), abs, 2)
    with pytest.raises(OSError, match="disk gone"):
        drain(out)


def test_consumer_closing_the_output_stops_upstream():
    produced = itertools.count()
    src = (next(produced) for _ in itertools.count())
    out = chanpool.pipeline(src, abs, (abs, 3), capacity=2)
    for _ in range(10):
        out.recv(30)
    out.close()
    wait_until(lambda: stage_threads() == 0, what="stages to stop after the consumer closed")
    n = next(produced)
    assert next(produced) == n + 1  # nobody else is pulling from the source any more


# ------------------------------------------------------------------------------ context


def test_cancelling_the_context_stops_the_pipeline():
    ctx = chanpool.Context()
    seen = []

    def stage(x):
        seen.append(chanpool.current_context())
        return x

    out = chanpool.pipeline(itertools.count(), stage, (abs, 2), context=ctx)
    for _ in range(50):
        out.recv(30)
    ctx.cancel()
    with pytest.raises(chanpool.Cancelled):
        drain(out)
    wait_until(lambda: stage_threads() == 0, what="stages to stop after cancel")
    # Stages run under a child of the given context.
    assert seen[0] is not ctx and seen[0].cancelled and seen[0].err is ctx.err


def test_deadline_stops_the_pipeline():
    ctx = chanpool.Context().with_timeout(0.05)
    out = chanpool.fan_out(itertools.count(), abs, 2, context=ctx)
    with pytest.raises(chanpool.DeadlineExceeded):
        drain(out)


def test_an_already_cancelled_context_runs_nothing():
    ctx = chanpool.Context()
    ctx.cancel()
    calls = []
    out = chanpool.fan_out(range(100), calls.append, 4, context=ctx)
    with pytest.raises(chanpool.Cancelled):
        drain(out)
    assert calls == []


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: chanpool.fan_out(range(3), 5), TypeError),
        (lambda: chanpool.fan_out(range(3), abs, 0), ValueError),
        (lambda: chanpool.fan_out(range(3), abs, "2"), TypeError),
        (lambda: chanpool.fan_out(range(3), abs, True), TypeError),
        (lambda: chanpool.fan_out(42, abs), TypeError),
        (lambda: chanpool.fan_out("abc", abs), TypeError),
        (lambda: chanpool.fan_out(range(3), abs, capacity=-1), ValueError),
        (lambda: chanpool.fan_out(range(3), abs, context="ctx"), TypeError),
        (lambda: chanpool.pipeline(range(3)), ValueError),
        (lambda: chanpool.pipeline(range(3), (abs,)), TypeError),
        (lambda: chanpool.pipeline(range(3), (abs, 0)), ValueError),
        (lambda: chanpool.pipeline(range(3), abs, None), TypeError),
    ],
)
def test_bad_input_is_refused_before_anything_starts(call, exc):
    before = stage_threads()
    with pytest.raises(exc):
        call()
    assert stage_threads() == before


# ------------------------------------------------------------------------------ exit


def test_exit_with_an_abandoned_pipeline_is_clean():
    for _ in range(3):
        proc = run_py(
            """
import itertools, chanpool
out = chanpool.pipeline(itertools.count(), abs, (abs, 3), capacity=2)
print(out.recv(30), flush=True)
stuck = chanpool.fan_out(chanpool.Channel(), abs, 2)   # input never closes
print("ok")
""",
            timeout=45,
        )
        assert_clean_exit(proc, "ok")
