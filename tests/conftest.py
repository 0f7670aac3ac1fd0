from __future__ import annotations

import faulthandler
import sys

import pytest
from helpers import watchdog

# Last line of defence: if a test hangs while holding the GIL (so no Python-level watchdog can
# run), faulthandler's C thread dumps every stack and ends the run instead of hanging CI.
HARD_TIMEOUT = 120


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "bug: reproduces a defect reported to the implementer (fails until it is fixed); "
        "deselect with -m 'not bug'",
    )


@pytest.fixture(autouse=True)
def _hard_timeout():
    faulthandler.dump_traceback_later(HARD_TIMEOUT, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def make_pool():
    """Factory for WorkerPools that are always shut down (under a watchdog) after the test."""
    import chanpool

    pools = []

    def make(*args, **kwargs):
        p = chanpool.WorkerPool(*args, **kwargs)
        pools.append(p)
        return p

    yield make
    for p in pools:
        watchdog(lambda p=p: p.shutdown(wait=True, cancel_futures=True), what="teardown shutdown")


@pytest.fixture
def make_ims():
    """InventoryManagers that are always shut down (under a watchdog) after the test."""
    from chanpool.inventory import InventoryManager

    made = []

    def make(*args, **kwargs):
        ims = InventoryManager(*args, **kwargs)
        made.append(ims)
        return ims

    yield make
    for ims in made:
        watchdog(lambda ims=ims: ims.shutdown(wait=True), what="teardown shutdown")
