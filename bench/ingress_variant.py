"""`roomevents ingress` with some of its per-callback extras switched off, for bench/ingress_parts.py.

Not a way to run roomevents: each switch drops something the product guarantees. It exists to
measure what each extra costs. BENCH_WITHOUT is a comma-separated list of:

  follower  the state view's consumer (its fetch loop runs all the time, even with no state records)
  headers   the record's CloudEvents headers
  metrics   the callback, request and publish metrics
  log       the request log line
  deadline  the publish deadline (the record is awaited without one)

Run: BENCH_WITHOUT=follower,log python bench/ingress_variant.py   (the environment of `roomevents ingress`)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SWITCHES = ("follower", "headers", "metrics", "log", "deadline")


def switch_off(names: set[str]) -> None:
    unknown = names - set(SWITCHES)
    if unknown:
        raise SystemExit(f"BENCH_WITHOUT: unknown {sorted(unknown)}; known: {', '.join(SWITCHES)}")
    if "follower" in names:
        from service.kafka.state_follower import StateFollower

        async def start(self) -> None:
            self.caught_up.set()  # ready at once, with an empty view

        async def stop(self) -> None:
            return None

        StateFollower.start, StateFollower.stop = start, stop
    if "headers" in names:
        from service.http import callbacks

        class _NoHeaders:
            @staticmethod
            def event_headers(_event: object) -> tuple:
                return ()

        callbacks.cloudevents = _NoHeaders  # type: ignore[assignment]
    if "metrics" in names:
        from service.metrics import Counter, Histogram

        # Every metric on the callback path goes through these two (service/metrics.py).
        Counter.increment = lambda *_args: None
        Histogram.observe = lambda *_args, **_kwargs: None
    if "log" in names:
        from service import logs

        logs.request_line = lambda *_args: None
    if "deadline" in names:
        from service.kafka import producer

        class _NoDeadlines(producer._Deadlines):
            def enter(self) -> int:
                return 0

            def leave(self, key: int) -> None:
                return None

        original_init = producer.Publisher.__init__

        def init(self, *args, **kwargs) -> None:
            original_init(self, *args, **kwargs)
            self._deadlines = _NoDeadlines(self.timeout)

        producer.Publisher.__init__ = init


if __name__ == "__main__":
    switch_off({name for name in os.environ.get("BENCH_WITHOUT", "").split(",") if name})
    from service.cli import main

    sys.exit(main())
