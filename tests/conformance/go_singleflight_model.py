"""A Python reference model of Go's golang.org/x/sync/singleflight.Group (Do, Forget): a
mutex-guarded map of calls, each with a WaitGroup (here an Event), its value, error and dups."""

import threading


class _Call:
    def __init__(self):
        self.done = threading.Event()
        self.val = None
        self.err = None
        self.dups = 0


class Group:
    def __init__(self):
        self._mu = threading.Lock()
        self._m = {}

    def do_shared(self, key, fn):
        with self._mu:
            c = self._m.get(key)
            if c is not None:
                c.dups += 1
        if c is not None:
            c.done.wait()
            if c.err is not None:
                raise c.err
            return c.val, True
        c = _Call()
        with self._mu:
            self._m[key] = c
        try:
            c.val = fn()
        except Exception as e:
            c.err = e
        finally:
            with self._mu:
                if self._m.get(key) is c:
                    del self._m[key]
            c.done.set()
        if c.err is not None:
            raise c.err
        return c.val, c.dups > 0

    def do(self, key, fn):
        return self.do_shared(key, fn)[0]

    def forget(self, key):
        with self._mu:
            self._m.pop(key, None)
