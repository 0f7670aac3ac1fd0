"""The tour behind ``python -m chanpool`` (not a public API): one comparison per pattern.

Each step runs a small piece of work with chanpool and the same work with the standard library,
checks that both got the right answer, and returns rows for the comparison table. Contenders
alternate from round to round, every measurement starts after ``gc.collect()`` with the previous
run's results freed, and the figure kept is the best of ``repeat`` rounds. Full benchmarks, with
more peers and min/median figures, live in bench/.
"""

from __future__ import annotations

from typing import Callable

from chanpool._tour.common import Say, TourRow, TourSizes, environment, format_tour
from chanpool._tour.inventory import tour_inventory
from chanpool._tour.limits import tour_context, tour_ratelimit
from chanpool._tour.messaging import tour_channels, tour_pipeline, tour_pubsub
from chanpool._tour.pools import tour_pool

__all__ = ["TOUR", "Say", "TourRow", "TourSizes", "environment", "format_tour", "tour_pool"]

TOUR: list[Callable[[TourSizes, Say], list[TourRow]]] = [
    tour_pool,
    tour_pubsub,
    tour_channels,
    tour_pipeline,
    tour_context,
    tour_ratelimit,
    tour_inventory,
]
