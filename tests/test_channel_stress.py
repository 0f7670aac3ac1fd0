"""Channels under stress, with exact books: many threads send and receive on several channels
of every kind, by plain operations, non-blocking ones and selects over several channels, with
tiny timeouts, while the channels are closed under them. Every value is attempted once:
every send that reported success is received exactly once, and no send that reported failure
(timeout, closed) is ever received."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from chanpool import Channel, Closed, select
from helpers import watchdog

KINDS = [0, 0, 1, 4, None]


class Books:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list = []
        self.failed: list = []
        self.got: list = []


def producer(p: int, chans: list[Channel], books: Books, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        v = (p, i)
        how = rnd.randrange(4)
        timeout = rnd.choice([0, 0.0002, 0.001, 0.01])
        try:
            if how == 0:
                chans[rnd.randrange(len(chans))].send(v, timeout=timeout)
                ok = True
            elif how == 1:
                ok = chans[rnd.randrange(len(chans))].try_send(v)
            else:
                picks = rnd.sample(chans, rnd.randint(2, len(chans)))
                if how == 2:
                    idx, _, ok = select([(c, v) for c in picks], timeout=timeout)
                else:
                    idx, _, ok = select([(c, v) for c in picks], default=True)
                    ok = idx is not None
        except (TimeoutError, Closed):
            ok = False
        with books.lock:
            (books.sent if ok else books.failed).append(v)


def consumer(chans: list[Channel], books: Books, seed: int) -> None:
    rnd = random.Random(seed)
    open_ = list(chans)
    while open_:
        how = rnd.randrange(4)
        timeout = rnd.choice([0.0002, 0.001, 0.01])
        try:
            if how == 0:
                c = rnd.choice(open_)
                try:
                    v = c.recv(timeout=timeout)
                except Closed:
                    open_.remove(c)
                    continue
            elif how == 1:
                c = rnd.choice(open_)
                try:
                    v, ok = c.try_recv()
                except Closed:
                    open_.remove(c)
                    continue
                if not ok:
                    continue
            else:
                picks = rnd.sample(open_, rnd.randint(1, len(open_)))
                idx, v, ok = select(picks, timeout=timeout)
                if not ok:
                    open_.remove(picks[idx])
                    continue
        except TimeoutError:
            continue
        with books.lock:
            books.got.append(v)


def closer(chans: list[Channel], books: Books, total: int, seed: int) -> None:
    # Closes the channels one by one while the traffic goes on.
    rnd = random.Random(seed)
    order = list(chans)
    rnd.shuffle(order)
    for k, c in enumerate(order[:-1]):
        while True:
            with books.lock:
                done = len(books.sent) + len(books.failed)
            if done >= total * (k + 1) // (len(order) + 1):
                break
            threading.Event().wait(0.0005)  # paces the closer only; no result depends on it
        c.close()


@pytest.mark.parametrize("seed", range(8))
def test_sends_and_receives_racing_timeouts_and_closes_keep_exact_books(seed):
    rnd = random.Random(seed)
    chans = [Channel(rnd.choice(KINDS)) for _ in range(4)]
    books = Books()
    producers, consumers, n = 5, 4, 3000

    def scenario():
        cs = [
            threading.Thread(target=consumer, args=(chans, books, seed * 100 + k))
            for k in range(consumers)
        ]
        ps = [
            threading.Thread(target=producer, args=(p, chans, books, n, seed * 100 + 50 + p))
            for p in range(producers)
        ]
        cl = threading.Thread(target=closer, args=(chans, books, producers * n, seed))
        for t in (*cs, *ps, cl):
            t.start()
        for t in (*ps, cl):
            t.join()
        for c in chans:
            c.close()
        for t in cs:
            t.join()

    watchdog(scenario, what="stress scenario")
    attempted = Counter((p, i) for p in range(producers) for i in range(n))
    assert Counter(books.sent) + Counter(books.failed) == attempted
    assert Counter(books.got) == Counter(books.sent), "a value was lost or duplicated"
    assert not set(books.got) & set(books.failed), "a failed send was received"
    assert books.sent and books.failed  # both outcomes really happened


def test_selects_on_unbuffered_channels_only_under_close_keep_exact_books():
    # Only select-select pairing moves values here: every side is a select.
    for _ in range(4):
        chans = [Channel(0) for _ in range(3)]
        books = Books()

        def send_all(p, chans=chans, books=books):
            for i in range(800):
                try:
                    select([(c, (p, i)) for c in chans], timeout=0.005)
                    ok = True
                except (TimeoutError, Closed):
                    ok = False
                with books.lock:
                    (books.sent if ok else books.failed).append((p, i))

        def receive_all(chans=chans, books=books):
            open_ = list(chans)
            while open_:
                try:
                    idx, v, ok = select(open_, timeout=0.005)
                except TimeoutError:
                    continue
                if not ok:
                    open_.pop(idx)
                    continue
                with books.lock:
                    books.got.append(v)

        def scenario(chans=chans):
            rs = [threading.Thread(target=receive_all) for _ in range(3)]
            ps = [threading.Thread(target=send_all, args=(p,)) for p in range(3)]
            for t in (*rs, *ps):
                t.start()
            for t in ps:
                t.join()
            for c in chans:
                c.close()
            for t in rs:
                t.join()

        watchdog(scenario, what="select-only scenario")
        assert Counter(books.got) == Counter(books.sent)
        assert len(books.sent) + len(books.failed) == 2400
        assert len(books.sent) > 1000
