"""Instructions per operation on the key paths, chanpool next to its stdlib peer (callgrind).

    python bench/instructions.py [--n 20000] [--only NAME ...]

Wall-clock figures move with machine load; instruction counts do not. Each (path, contender)
runs twice under ``valgrind --tool=callgrind``, once with n operations and once with 2n, and the
difference divided by n is the cost of one operation: start-up, imports and pool creation
cancel out. All threads are counted (a worker's instructions are part of the operation).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Each snippet gets `n` and must do n operations; `setup` runs before, outside nothing (both runs
# do the same setup, so it cancels out too).
PATHS: dict[str, dict[str, tuple[str, str]]] = {
    "map (4 workers)": {
        "chanpool": (
            "from chanpool import WorkerPool; p = WorkerPool(4); list(p.map(abs, range(64)))",
            "list(p.map(abs, range(n)))",
        ),
        "mp.ThreadPool": (
            "from multiprocessing.pool import ThreadPool; p = ThreadPool(4); p.map(abs, range(64))",
            "p.map(abs, range(n))",
        ),
        "loop": ("", "list(map(abs, range(n)))"),
    },
    "map_unordered (4 workers)": {
        "chanpool": (
            "from chanpool import WorkerPool; p = WorkerPool(4)\n"
            "list(p.map_unordered(abs, range(64)))",
            "list(p.map_unordered(abs, range(n)))",
        ),
        "mp.ThreadPool imap_unordered": (
            "from multiprocessing.pool import ThreadPool; p = ThreadPool(4)\n"
            "list(p.imap_unordered(abs, range(64)))",
            "list(p.imap_unordered(abs, range(n)))",
        ),
    },
    "map, a Python function (4 workers)": {
        "chanpool": (
            "from chanpool import WorkerPool; p = WorkerPool(4)\n"
            "def f(x): return x\n"
            "list(p.map(f, range(64)))",
            "list(p.map(f, range(n)))",
        ),
        "mp.ThreadPool": (
            "from multiprocessing.pool import ThreadPool; p = ThreadPool(4)\n"
            "def f(x): return x\n"
            "p.map(f, range(64))",
            "p.map(f, range(n))",
        ),
        "loop": ("def f(x): return x", "list(map(f, range(n)))"),
    },
    "submit+result (4 workers)": {
        "chanpool": (
            "from chanpool import WorkerPool; p = WorkerPool(4); p.submit(abs, 1).result()",
            "fs = [p.submit(abs, i) for i in range(n)]\nfor f in fs: f.result()",
        ),
        "ThreadPoolExecutor": (
            "from concurrent.futures import ThreadPoolExecutor as T; p = T(4); p.submit(abs, 1)",
            "fs = [p.submit(abs, i) for i in range(n)]\nfor f in fs: f.result()",
        ),
        "mp.ThreadPool apply_async": (
            "from multiprocessing.pool import ThreadPool; p = ThreadPool(4)\n"
            "p.apply_async(abs, (1,)).get()",
            "fs = [p.apply_async(abs, (i,)) for i in range(n)]\nfor f in fs: f.get()",
        ),
    },
    "Group go+wait (4 workers)": {
        "chanpool Group": (
            "from chanpool import Group, WorkerPool; p = WorkerPool(4)\n"
            "g = Group(pool=p); g.go(abs, 1); g.wait()",
            "g = Group(pool=p)\nfor i in range(n): g.go(abs, i)\ng.wait()",
        ),
        "chanpool submit+result": (
            "from chanpool import WorkerPool; p = WorkerPool(4); p.submit(abs, 1).result()",
            "fs = [p.submit(abs, i) for i in range(n)]\nfor f in fs: f.result()",
        ),
        "TPE + wait(FIRST_EXCEPTION)": (
            "import concurrent.futures as cf; p = cf.ThreadPoolExecutor(4); p.submit(abs, 1)",
            "fs = [p.submit(abs, i) for i in range(n)]\n"
            "cf.wait(fs, return_when=cf.FIRST_EXCEPTION)",
        ),
    },
    "round trip (16 workers)": {
        "chanpool": (
            "from chanpool import WorkerPool; p = WorkerPool(16); p.submit(abs, 1).result()",
            "for i in range(n): p.submit(abs, i).result()",
        ),
        "ThreadPoolExecutor": (
            "from concurrent.futures import ThreadPoolExecutor as T; p = T(16)",
            "for i in range(n): p.submit(abs, i).result()",
        ),
        "SimpleQueue ping-pong": (
            "import queue, threading\n"
            "a, b = queue.SimpleQueue(), queue.SimpleQueue()\n"
            "def serve():\n"
            "    while (x := a.get()) is not None: b.put(x)\n"
            "threading.Thread(target=serve, daemon=True).start()",
            "for i in range(n):\n    a.put(i); b.get()",
        ),
    },
    "publish, 1 subscriber": {
        "chanpool": (
            "import chanpool; bus = chanpool.PubSub(); seen = []\n"
            "bus.subscribe('t.x', seen.append, capacity=1 << 20)",
            "for i in range(n): bus.publish('t.x', i)\nbus.close(drain=True)",
        ),
        "SimpleQueue + Thread": (
            "import queue, threading; q = queue.SimpleQueue(); seen = []\n"
            "def run():\n"
            "    while (m := q.get()) is not None: seen.append(m)\n"
            "t = threading.Thread(target=run); t.start()",
            "for i in range(n): q.put(('t.x', i))\nq.put(None); t.join()",
        ),
    },
    "publish, 10 subscribers": {
        "chanpool": (
            "import chanpool; bus = chanpool.PubSub(); seen = []\n"
            "for _ in range(10): bus.subscribe('t.x', seen.append, capacity=1 << 20)",
            "for i in range(n): bus.publish('t.x', i)\nbus.close(drain=True)",
        ),
        "SimpleQueue + Thread": (
            "import queue, threading; qs = [queue.SimpleQueue() for _ in range(10)]; seen = []\n"
            "def run(q):\n"
            "    while (m := q.get()) is not None: seen.append(m)\n"
            "ts = [threading.Thread(target=run, args=(q,)) for q in qs]\n"
            "for t in ts: t.start()",
            "for i in range(n):\n    for q in qs: q.put(('t.x', i))\n"
            "for q in qs: q.put(None)\nfor t in ts: t.join()",
        ),
    },
    "inventory add+result (10 workers)": {
        "chanpool InventoryManager": (
            "from chanpool.inventory import InventoryManager; m = InventoryManager()\n"
            "m.add_stock('p', 1).result()",
            "fs = [m.add_stock('p', 1) for i in range(n)]\nfor f in fs: f.result()",
        ),
        "ThreadPoolExecutor + Lock": (
            "import threading; from concurrent.futures import ThreadPoolExecutor as T\n"
            "p = T(10); lock = threading.Lock(); stock = {}\n"
            "def add(k, q):\n"
            "    with lock: stock[k] = stock.get(k, 0) + q; return stock[k]\n"
            "p.submit(add, 'p', 1).result()",
            "fs = [p.submit(add, 'p', 1) for i in range(n)]\nfor f in fs: f.result()",
        ),
    },
    "Channel send+recv, 1 thread": {
        "chanpool Channel": (
            "import chanpool; c = chanpool.Channel(None)",
            "for i in range(n): c.send(i)\nfor i in range(n): c.recv()",
        ),
        "queue.SimpleQueue": (
            "import queue; c = queue.SimpleQueue()",
            "for i in range(n): c.put(i)\nfor i in range(n): c.get()",
        ),
        "queue.Queue": (
            "import queue; c = queue.Queue()",
            "for i in range(n): c.put(i)\nfor i in range(n): c.get()",
        ),
    },
    "Channel 1 producer / 1 consumer": {
        "chanpool Channel(None)": (
            "import threading, chanpool; c = chanpool.Channel(None)\n"
            "def run(k):\n"
            "    for i in range(k): c.send(i)\n",
            "t = threading.Thread(target=run, args=(n,)); t.start()\n"
            "for i in range(n): c.recv()\nt.join()",
        ),
        "chanpool Channel(1024)": (
            "import threading, chanpool; c = chanpool.Channel(1024)\n"
            "def run(k):\n"
            "    for i in range(k): c.send(i)\n",
            "t = threading.Thread(target=run, args=(n,)); t.start()\n"
            "for i in range(n): c.recv()\nt.join()",
        ),
        "queue.SimpleQueue": (
            "import threading, queue; c = queue.SimpleQueue()\n"
            "def run(k):\n"
            "    for i in range(k): c.put(i)\n",
            "t = threading.Thread(target=run, args=(n,)); t.start()\n"
            "for i in range(n): c.get()\nt.join()",
        ),
    },
    "coroutine <-> coroutine, one loop": {
        "chanpool Channel(64)": (
            "import asyncio, chanpool\n"
            "async def c2c(k):\n"
            "    q = chanpool.Channel(64)\n"
            "    async def produce():\n"
            "        for i in range(k): await q.send_async(i)\n"
            "    async def consume():\n"
            "        for _ in range(k): await q.recv_async()\n"
            "    await asyncio.gather(produce(), consume())\n",
            "asyncio.run(c2c(n))",
        ),
        "asyncio.Queue(64)": (
            "import asyncio\n"
            "async def c2c(k):\n"
            "    q = asyncio.Queue(64)\n"
            "    async def produce():\n"
            "        for i in range(k): await q.put(i)\n"
            "    async def consume():\n"
            "        for _ in range(k): await q.get()\n"
            "    await asyncio.gather(produce(), consume())\n",
            "asyncio.run(c2c(n))",
        ),
    },
    "await pool.run(int), 8 in flight": {
        "chanpool": (
            "import asyncio, chanpool; p = chanpool.WorkerPool(8)\n"
            "async def go(k):\n"
            "    for _ in range(k // 8): await asyncio.gather(*(p.run(int) for _ in range(8)))\n",
            "asyncio.run(go(n))",
        ),
        "asyncio.to_thread": (
            "import asyncio\n"
            "async def go(k):\n"
            "    for _ in range(k // 8):\n"
            "        await asyncio.gather(*(asyncio.to_thread(int) for _ in range(8)))\n",
            "asyncio.run(go(n))",
        ),
    },
}


# Paths whose measured body runs inside a function: a module-level loop stores its variable in
# the globals dict, whose lookups cost from ~30 to ~140 instructions depending on hash collisions
# with the other globals (so on the contender's imports and PYTHONHASHSEED); locals do not.
IN_FUNCTION = {
    "round trip (16 workers)",
    "Channel send+recv, 1 thread",
    "Channel 1 producer / 1 consumer",
}

# Paths whose operation wakes other threads are slow under valgrind (it runs one thread at a
# time): they run with n divided by this.
SLOW = {
    "round trip (16 workers)": 20,
    "publish, 10 subscribers": 5,
    "await pool.run(int), 8 in flight": 10,
}


def count(setup: str, body: str, n: int, in_function: bool = False) -> int:
    """Total instructions of one run of ``setup`` then ``body`` with ``n``, all threads."""
    if in_function:
        lines = "\n".join("    " + line for line in body.splitlines())
        body = f"def _body():\n{lines}\n_body()"
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "s.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(f"n = {n}\n{setup}\n{body}\nimport os; os._exit(0)\n")
        out = os.path.join(d, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--separate-threads=no",
                sys.executable,
                script,
            ],
            check=True,
            capture_output=True,
        )
        with open(out, encoding="utf-8") as fh:
            text = fh.read()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError("callgrind wrote no summary")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="operations in the short run")
    parser.add_argument("--only", nargs="*", help="paths whose name contains one of these")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    print(f"instructions per operation (callgrind, (I(2n) - I(n)) / n, n = {args.n:,})")
    print()
    width = max(len(c) for p in PATHS.values() for c in p)
    for path, contenders in PATHS.items():
        if args.only and not any(o in path for o in args.only):
            continue
        print(path)
        per_op = {}
        n = max(1, args.n // SLOW.get(path, 1))
        for who, (setup, body) in contenders.items():
            local = path in IN_FUNCTION
            one = count(setup, body, n, local)
            two = count(setup, body, 2 * n, local)
            per_op[who] = (two - one) / n
        first = next(iter(per_op.values()))
        for who, ins in per_op.items():
            print(f"  {who:<{width}}  {ins:>9,.0f}  ({ins / first:.2f}x chanpool)")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
