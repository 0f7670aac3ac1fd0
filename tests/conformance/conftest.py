"""Conformance suites: the originals' own tests, ported, run against the original and chanpool.

Every test in a suite module is parametrized with ``impl`` in ("original", "chanpool") through
the module's own ``impl`` fixture, so a wrong port fails on the original too. A test where
chanpool deliberately differs carries ``@pytest.mark.difference("reason")``: its chanpool side
asserts the documented behaviour instead, and the reason is listed in README.md here.

At the end of a run the terminal summary prints, per suite, how many tests passed on each side.
"""

from __future__ import annotations

import collections

import pytest

_results: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "difference(reason): chanpool deliberately differs; listed in README.md"
    )


def _side(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for value in callspec.params.values():
        if value in ("original", "chanpool"):
            return str(value)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    side = _side(item)
    if side is None or "conformance" not in str(item.fspath):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        suite = item.module.__name__.rsplit(".", 1)[-1] if item.module else "?"
        counts = _results[(suite, side)]
        counts[1] += 1
        if report.passed:
            counts[0] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _results:
        return
    suites = sorted({s for s, _ in _results})
    terminalreporter.section("conformance: passed / run, per side")
    for suite in suites:
        o = _results.get((suite, "original"), [0, 0])
        c = _results.get((suite, "chanpool"), [0, 0])
        terminalreporter.write_line(
            f"{suite:<32} original {o[0]:>3}/{o[1]:<3}  chanpool {c[0]:>3}/{c[1]:<3}"
        )
