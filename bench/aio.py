"""asyncio: chanpool's async face against the usual ways to cross between threads and coroutines.

Cases (each contender moves the same n items; min and median of interleaved rounds):
- thread -> coroutine: a thread sends, a coroutine receives (Channel(64) vs janus, culsans,
  asyncio.Queue fed with loop.call_soon_threadsafe);
- coroutine -> thread: the reverse;
- coroutine <-> coroutine on one loop: Channel(64) vs asyncio.Queue(64) (and aiochannel);
- select over 2 channels on one loop: `select_async([a, b])` vs the asyncio.wait
  FIRST_COMPLETED idiom over two asyncio.Queue gets (the losing get cancelled);
- await pool.run(f) vs asyncio.to_thread(f), 8 in flight;
- PubSub, a thread publishing to 10 async handlers vs an asyncio.Queue per subscriber (one
  call_soon_threadsafe per message fanning out, 10 consumer tasks);
- a thread publishing to a pull subscription read with `async for` vs an asyncio.Queue fed
  by call_soon_threadsafe.
The anchors are installed by the Makefile's bench target, not by make test.
"""

from __future__ import annotations

import os
import sys

# This file's name is the module it measures: keep bench/ off the path while asyncio (and the
# anchors, which import it) load, so `import asyncio` finds the standard library's.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
import asyncio  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import chanpool  # noqa: E402

sys.path.insert(0, _HERE)
from _harness import Case, parser, report, rounds, scaled  # noqa: E402

CAP = 64


def optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


janus = optional("janus")
culsans = optional("culsans")
aiochannel = optional("aiochannel")


def t2c_chanpool(n: int) -> Callable[[], None]:
    def run() -> None:
        ch = chanpool.Channel(CAP)

        async def main() -> None:
            t = threading.Thread(target=lambda: ([ch.send(i) for i in range(n)], ch.close()))
            t.start()
            async for _ in ch:
                pass
            t.join()

        asyncio.run(main())

    return run


def t2c_call_soon(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            q: asyncio.Queue[Any] = asyncio.Queue()
            done = object()

            def produce() -> None:
                for i in range(n):
                    loop.call_soon_threadsafe(q.put_nowait, i)
                loop.call_soon_threadsafe(q.put_nowait, done)

            t = threading.Thread(target=produce)
            t.start()
            while await q.get() is not done:
                pass
            t.join()

        asyncio.run(main())

    return run


def t2c_mixed(mod: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            q = mod.Queue(CAP)
            t = threading.Thread(target=lambda: [q.sync_q.put(i) for i in range(n)])
            t.start()
            for _ in range(n):
                await q.async_q.get()
            t.join()
            q.close()
            await q.wait_closed()

        asyncio.run(main())

    return run


def c2t_chanpool(n: int) -> Callable[[], None]:
    def run() -> None:
        ch = chanpool.Channel(CAP)

        async def main() -> None:
            t = threading.Thread(target=lambda: [None for _ in ch])
            t.start()
            for i in range(n):
                await ch.send_async(i)
            ch.close()
            await asyncio.to_thread(t.join)

        asyncio.run(main())

    return run


def c2t_mixed(mod: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            q = mod.Queue(CAP)
            t = threading.Thread(target=lambda: [q.sync_q.get() for _ in range(n)])
            t.start()
            for i in range(n):
                await q.async_q.put(i)
            await asyncio.to_thread(t.join)
            q.close()
            await q.wait_closed()

        asyncio.run(main())

    return run


def c2c(make: Callable[[], Any], put: str, get: str, n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            q = make()

            async def produce() -> None:
                p = getattr(q, put)
                for i in range(n):
                    await p(i)

            async def consume() -> None:
                g = getattr(q, get)
                for _ in range(n):
                    await g()

            await asyncio.gather(produce(), consume())

        asyncio.run(main())

    return run


def pool_run(n: int) -> Callable[[], None]:
    pool = chanpool.WorkerPool(8)

    def run() -> None:
        async def main() -> None:
            for _ in range(n // 8):
                await asyncio.gather(*(pool.run(int) for _ in range(8)))

        asyncio.run(main())

    return run


def to_thread(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            for _ in range(n // 8):
                await asyncio.gather(*(asyncio.to_thread(int) for _ in range(8)))

        asyncio.run(main())

    return run


def select_chanpool(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            a, b = chanpool.Channel(CAP), chanpool.Channel(CAP)

            async def produce(ch: Any) -> None:
                for i in range(n // 2):
                    await ch.send_async(i)

            async def consume() -> None:
                for _ in range(n // 2 * 2):
                    await chanpool.select_async([a, b])

            await asyncio.gather(produce(a), produce(b), consume())

        asyncio.run(main())

    return run


def select_wait_first(n: int) -> Callable[[], None]:
    """The plain asyncio idiom: a get task per queue, asyncio.wait(FIRST_COMPLETED), the
    other get cancelled (a cancelled Queue.get loses nothing)."""

    def run() -> None:
        async def main() -> None:
            a: asyncio.Queue[int] = asyncio.Queue(CAP)
            b: asyncio.Queue[int] = asyncio.Queue(CAP)

            async def produce(q: asyncio.Queue[int]) -> None:
                for i in range(n // 2):
                    await q.put(i)

            async def consume() -> None:
                got = 0
                while got < n // 2 * 2:
                    gets = [asyncio.ensure_future(a.get()), asyncio.ensure_future(b.get())]
                    _, pending = await asyncio.wait(gets, return_when=asyncio.FIRST_COMPLETED)
                    for t in pending:
                        t.cancel()
                    for t in gets:
                        try:
                            await t
                        except asyncio.CancelledError:
                            continue
                        # Completed (the other one too, just before its cancel): kept.
                        got += 1

            await asyncio.gather(produce(a), produce(b), consume())

        asyncio.run(main())

    return run


SUBS = 10


def pubsub_async_handlers(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            bus = chanpool.PubSub()
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            left = [SUBS * n]

            async def handler(m: Any) -> None:
                left[0] -= 1
                if not left[0]:
                    done.set_result(None)

            for _ in range(SUBS):
                bus.subscribe("t", handler)
            t = threading.Thread(target=lambda: [bus.publish("t", i) for i in range(n)])
            t.start()
            await done
            t.join()
            await bus.close_async()

        asyncio.run(main())

    return run


def queue_per_subscriber(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            qs: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in range(SUBS)]

            def fan_out(i: int) -> None:
                for q in qs:
                    q.put_nowait(i)

            async def consume(q: asyncio.Queue[Any]) -> None:
                for _ in range(n):
                    await q.get()

            def produce() -> None:
                for i in range(n):
                    loop.call_soon_threadsafe(fan_out, i)

            tasks = [asyncio.ensure_future(consume(q)) for q in qs]
            t = threading.Thread(target=produce)
            t.start()
            await asyncio.gather(*tasks)
            t.join()

        asyncio.run(main())

    return run


def pull_async_for(n: int) -> Callable[[], None]:
    def run() -> None:
        async def main() -> None:
            bus = chanpool.PubSub()
            sub = bus.subscribe("t")
            t = threading.Thread(target=lambda: [bus.publish("t", i) for i in range(n)])
            t.start()
            k = 0
            async for _ in sub:
                k += 1
                if k == n:
                    break
            t.join()
            bus.close()

        asyncio.run(main())

    return run


def main() -> None:
    args = parser(__doc__).parse_args()
    started = time.perf_counter()
    n = scaled(50_000, args.scale)
    cases = []
    t2c = {"chanpool": t2c_chanpool(n), "call_soon_threadsafe": t2c_call_soon(n)}
    c2t = {"chanpool": c2t_chanpool(n)}
    for name, mod in (("janus", janus), ("culsans", culsans)):
        if mod is not None:
            t2c[name] = t2c_mixed(mod, n)
            c2t[name] = c2t_mixed(mod, n)
    anchor = "janus" if janus is not None else "call_soon_threadsafe"
    cases.append(Case("thread -> coroutine", n, anchor, rounds(t2c, args.repeat)))
    if len(c2t) > 1:
        cases.append(Case("coroutine -> thread", n, anchor, rounds(c2t, args.repeat)))
    cc = {
        "asyncio.Queue": c2c(lambda: asyncio.Queue(CAP), "put", "get", n),
        "chanpool": c2c(lambda: chanpool.Channel(CAP), "send_async", "recv_async", n),
    }
    if aiochannel is not None:
        cc["aiochannel"] = c2c(lambda: aiochannel.Channel(CAP), "put", "get", n)
    cases.append(Case("coroutine <-> coroutine", n, "asyncio.Queue", rounds(cc, args.repeat)))
    sel = {"asyncio.wait FIRST_COMPLETED": select_wait_first(n), "select_async": select_chanpool(n)}
    cases.append(
        Case("select over 2 channels", n, "asyncio.wait FIRST_COMPLETED", rounds(sel, args.repeat))
    )
    m = scaled(8_000, args.scale)
    runs = {"asyncio.to_thread": to_thread(m), "await pool.run": pool_run(m)}
    cases.append(Case("await pool.run(f)", m, "asyncio.to_thread", rounds(runs, args.repeat)))
    p = scaled(10_000, args.scale)
    fan = {
        "asyncio.Queue per subscriber": queue_per_subscriber(p),
        "chanpool": pubsub_async_handlers(p),
    }
    cases.append(
        Case(
            "PubSub, 10 async handlers", p, "asyncio.Queue per subscriber", rounds(fan, args.repeat)
        )
    )
    pull = {"call_soon_threadsafe": t2c_call_soon(n), "chanpool": pull_async_for(n)}
    cases.append(
        Case("pull subscription, async for", n, "call_soon_threadsafe", rounds(pull, args.repeat))
    )
    report("bench/aio.py", args, cases, started)


if __name__ == "__main__":
    main()
