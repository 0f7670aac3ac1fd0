"""Rust log records reach Python logging (pyo3-log) on the "chanpool" logger."""

from __future__ import annotations

import logging

import chanpool


def chanpool_records(caplog, level=logging.DEBUG):
    return [r for r in caplog.records if r.name == "chanpool" and r.levelno >= level]


def test_start_and_shutdown_are_logged_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    p = chanpool.WorkerPool(2, thread_name_prefix="cplog")
    started = [
        r
        for r in chanpool_records(caplog)
        if "WorkerPool" in r.getMessage() and "started" in r.getMessage()
    ]
    assert len(started) == 1, [r.getMessage() for r in chanpool_records(caplog)]
    assert started[0].levelno == logging.DEBUG
    assert "cplog" in started[0].getMessage()
    p.submit(int).result(timeout=30)
    p.shutdown()
    stopped = [r for r in chanpool_records(caplog) if "shut down" in r.getMessage()]
    assert len(stopped) == 1, [r.getMessage() for r in chanpool_records(caplog)]
    assert stopped[0].levelno == logging.DEBUG
    assert "cplog" in stopped[0].getMessage()


def test_context_manager_logs_shutdown(caplog):
    caplog.set_level(logging.DEBUG, logger="chanpool")
    with chanpool.WorkerPool(1, thread_name_prefix="cplogctx"):
        pass
    msgs = [r.getMessage() for r in chanpool_records(caplog)]
    assert any("cplogctx" in m and "started" in m for m in msgs), msgs
    assert any("cplogctx" in m and "shut down" in m for m in msgs), msgs


def test_debug_records_respect_the_logger_level(caplog):
    caplog.set_level(logging.INFO, logger="chanpool")
    p = chanpool.WorkerPool(1, thread_name_prefix="cplogquiet")
    p.shutdown()
    assert [r for r in chanpool_records(caplog) if "cplogquiet" in r.getMessage()] == []
    # Level changes at run time are honoured (no stale cached level).
    caplog.set_level(logging.DEBUG, logger="chanpool")
    q = chanpool.WorkerPool(1, thread_name_prefix="cplogloud")
    q.shutdown()
    assert [r for r in chanpool_records(caplog) if "cplogloud" in r.getMessage()]


def test_records_propagate_to_a_handler_on_the_chanpool_logger():
    logger = logging.getLogger("chanpool")
    seen = []

    class H(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    h = H(level=logging.DEBUG)
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        chanpool.WorkerPool(1, thread_name_prefix="cploghandler").shutdown()
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    assert any("cploghandler" in m and "started" in m for m in seen), seen
    assert any("cploghandler" in m and "shut down" in m for m in seen), seen
