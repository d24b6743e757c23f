"""The daemon: APScheduler 3 as a ticker. Each source's next check lives in the database, so the
scheduler only ticks: one job hands the sources that are due to a bounded pool of workers
(a slow source holds one worker, never the others), another drains the outbox.

The first SIGTERM or SIGINT stops new work, lets what is in flight finish and returns; a second
one exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.config import SourceConfig
from monitor.errors import StoreError
from monitor.pipeline import Pipeline, utc_now

log = logging.getLogger(__name__)

FORCED_EXIT_CODE = 130  # second signal: leave at once


class _SkippedRuns(logging.Filter):
    """APScheduler warns each time a tick finds the job's previous run still going (a slow
    channel, a long poll). The daemon's jobs run one at a time by design and the next tick
    takes the work up, so that is no warning: it would fill the log every second."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUNS = _SkippedRuns()


class Daemon:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.stop = pipeline.stop
        self._signals = 0
        self._in_flight: set[str] = set()
        self._sending = threading.Event()  # a delivery round is under way
        self._more_to_send = threading.Event()  # a poll found alerts since it began
        self._in_flight_lock = threading.Lock()
        settings = pipeline.runtime.config.daemon
        self._workers = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="poll")
        logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUNS)
        self._scheduler = BackgroundScheduler(
            executors={"default": JobExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        jobs = (
            (self._tick, settings.tick),
            (self._deliver, settings.delivery_tick),
            (self._operations, settings.ops_interval),
        )
        for job, every in jobs:
            self._scheduler.add_job(
                job,
                "interval",
                seconds=every.total_seconds(),
                next_run_time=utc_now(),
                id=job.__name__.strip("_"),
            )

    def run(self) -> None:
        """Run until a signal (or ``request_stop``); returns once in-flight work is done."""
        self.pipeline.prepare()
        self._install_signal_handlers()
        self._scheduler.start()
        runtime = self.pipeline.runtime
        log.info(
            "daemon started sources=%d rules=%d channels=%d",
            len(runtime.config.sources),
            len(runtime.rules.rules),
            len(runtime.channels),
        )
        self.stop.wait()
        log.info("stopping: finishing work in flight")
        self._scheduler.shutdown(wait=True)
        self._workers.shutdown(wait=True, cancel_futures=True)
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

    def _tick(self) -> None:
        """Hand every due source that is not already being polled to a worker."""
        try:
            due = self.pipeline.due_sources()
        except StoreError as exc:
            log.error("cannot read the schedule, will retry next tick error=%s", exc)
            return
        for source in due:
            with self._in_flight_lock:
                if source.name in self._in_flight or self.stop.is_set():
                    continue
                self._in_flight.add(source.name)
            try:
                self._workers.submit(self._poll, source)
            except RuntimeError:  # the pool is shutting down
                with self._in_flight_lock:
                    self._in_flight.discard(source.name)

    def _poll(self, source: SourceConfig) -> None:
        try:
            if not self.stop.is_set():
                self.pipeline.poll_source(source)
        except StoreError as exc:
            log.error("poll failed, will retry source=%s error=%s", source.name, exc)
        except Exception:
            log.exception("poll failed, will retry source=%s", source.name)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(source.name)
        self._deliver_soon()

    def _deliver_soon(self) -> None:
        """Send what a poll found now, on the delivery job's thread, not this poll worker's:
        a round under way goes round once more, else the job is run at once."""
        self._more_to_send.set()
        if self.stop.is_set() or self._sending.is_set():
            return
        with contextlib.suppress(JobLookupError, SchedulerNotRunningError):
            self._scheduler.modify_job("deliver", next_run_time=utc_now())

    def _operations(self) -> None:
        """The ops job: sources disabled or silent, channels down."""
        try:
            self.pipeline.check_operations()
        except StoreError as exc:
            log.error("ops check failed, will retry error=%s", exc)
        except Exception:
            log.exception("ops check failed, will retry")

    def _deliver(self) -> None:
        """The delivery job (never two at once: the scheduler runs one instance of it)."""
        self._sending.set()
        try:
            self._more_to_send.set()
            while self._more_to_send.is_set() and not self.stop.is_set():
                self._more_to_send.clear()
                self.pipeline.deliver_due()
        except StoreError as exc:
            log.error("delivery round failed, will retry next tick error=%s", exc)
        except Exception:
            log.exception("delivery round failed, will retry next tick")
        finally:
            self._sending.clear()
