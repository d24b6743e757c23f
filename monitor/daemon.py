"""The daemon: APScheduler 3 as a ticker. Each source's next check lives in the database, so the
scheduler only ticks; one job polls the sources that are due, another drains the outbox.

The first SIGTERM or SIGINT stops new work, lets what is in flight finish and returns; a second
one exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.errors import StoreError
from monitor.pipeline import Pipeline, utc_now

log = logging.getLogger(__name__)

FORCED_EXIT_CODE = 130  # second signal: leave at once


class Daemon:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.stop = pipeline.stop
        self._signals = 0
        self._delivering = threading.Lock()  # one outbox drain at a time, whoever starts it
        daemon = pipeline.runtime.config.daemon
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._scheduler.add_job(
            self._poll,
            "interval",
            seconds=daemon.tick.total_seconds(),
            id="poll",
            next_run_time=utc_now(),
        )
        self._scheduler.add_job(
            self._deliver,
            "interval",
            seconds=daemon.delivery_tick.total_seconds(),
            id="deliver",
            next_run_time=utc_now(),
        )

    def run(self) -> None:
        """Run until a signal (or ``request_stop``); returns once in-flight work is done."""
        self.pipeline.prepare()
        self._install_signal_handlers()
        self._scheduler.start()
        log.info(
            "daemon started sources=%d rules=%d channels=%d",
            len(self.pipeline.runtime.config.sources),
            len(self.pipeline.runtime.rules.rules),
            len(self.pipeline.runtime.channels),
        )
        self.stop.wait()
        log.info("stopping: finishing work in flight")
        self._scheduler.shutdown(wait=True)
        log.info("daemon stopped")

    def request_stop(self) -> None:
        self.stop.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting at once")
            os._exit(FORCED_EXIT_CODE)
        log.info("signal received signal=%s", signal.Signals(signum).name)
        self.stop.set()

    def _poll(self) -> None:
        try:
            self.pipeline.poll_due()
        except StoreError as exc:
            log.error("poll failed, will retry next tick error=%s", exc)
        except Exception:
            log.exception("poll tick failed, will retry next tick")
        self._deliver()

    def _deliver(self) -> None:
        if not self._delivering.acquire(blocking=False):
            return
        try:
            self.pipeline.deliver_due()
        except StoreError as exc:
            log.error("delivery round failed, will retry next tick error=%s", exc)
        except Exception:
            log.exception("delivery tick failed, will retry next tick")
        finally:
            self._delivering.release()
