"""Durable publishing: a request is answered only after the broker has acknowledged its event.

The service is the platform's source of truth: an event it loses can never be recovered
downstream, so "the producer queued it" is not enough to tell a client "done". `publish` awaits
the delivery report (acks=all, idempotent producer). Concurrent requests share the producer's
batches (a small linger), so waiting for the broker costs latency, not throughput.

When the broker cannot take the event within `ack_timeout_s` (librdkafka's message timeout), the
caller gets `EventLogUnavailable` and answers 503: the client retries with the same request id,
and Bronze keeps one event per id even if the first attempt landed after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from lib.errors import EventLogUnavailable
from lib.kafka import producer_config

#: How often the broker is probed for /ready and /health (a metadata request for the topic).
PROBE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class BrokerState:
    """What the last probe of the broker found."""

    connected: bool
    checked_at: float  # time.time() of the probe
    error: str | None


class DurablePublisher:
    """One idempotent producer for the whole service; `publish` returns once Kafka has the event."""

    def __init__(self, bootstrap: str, topic: str, ack_timeout_s: float = 5.0, linger_ms: int = 2) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.ack_timeout_s = ack_timeout_s
        self._producer = Producer({
            **producer_config(bootstrap, "roman-service"),
            "linger.ms": linger_ms,  # requests arriving together share a batch and one acknowledgement
            "message.timeout.ms": int(ack_timeout_s * 1000),  # the bound after which the client gets a 503
        })
        self._lock = threading.Lock()
        self.acked = 0
        self.failed = 0
        self.in_flight = 0
        self.broker = BrokerState(False, 0.0, "not probed yet")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settled: list[tuple[asyncio.Future, Any]] = []
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve delivery reports and probe the broker in two threads, settling futures on `loop`."""
        self._loop = loop
        self._stopped.clear()
        self.broker = self._probe()
        for target, name in ((self._serve_reports, "delivery-reports"), (self._watch_broker, "broker-probe")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    async def publish(self, key: bytes, value: bytes) -> None:
        """Send one event and wait for the broker's acknowledgement; raises EventLogUnavailable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        try:
            self._producer.produce(self.topic, key=key, value=value,
                                   on_delivery=lambda err, _msg: self._report(future, err))
        except BufferError as exc:
            raise EventLogUnavailable(
                f"the producer's queue is full ({exc}): Kafka at {self.bootstrap} has been away too long"
            ) from exc
        except KafkaException as exc:
            raise EventLogUnavailable(f"Kafka refused the event: {exc.args[0].str()}") from exc
        with self._lock:
            self.in_flight += 1
        try:
            # librdkafka fails the message after ack_timeout_s; the margin only guards against a lost report.
            err = await asyncio.wait_for(future, timeout=self.ack_timeout_s + 2.0)
        except TimeoutError as exc:
            raise EventLogUnavailable(self._not_acknowledged()) from exc
        finally:
            with self._lock:
                self.in_flight -= 1
        if err is not None:
            raise EventLogUnavailable(self._describe(err))

    def _describe(self, err: KafkaError) -> str:
        if err.code() == KafkaError._MSG_TIMED_OUT:
            return self._not_acknowledged()
        return f"Kafka did not take the event: {err.str()}"

    def _not_acknowledged(self) -> str:
        return f"Kafka at {self.bootstrap} did not acknowledge the event within {self.ack_timeout_s:.0f} s"

    def _report(self, future: asyncio.Future, err: KafkaError | None) -> None:
        """The delivery callback (inside poll or flush): count it and keep it for the event loop."""
        with self._lock:
            self._settled.append((future, err))
            if err is None:
                self.acked += 1
            else:
                self.failed += 1

    def _serve_reports(self) -> None:
        """poll() runs the delivery callbacks; their results reach the event loop in one call per poll."""
        while not self._stopped.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            batch, self._settled = self._settled, []
        if not batch or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers any more
            self._loop.call_soon_threadsafe(_settle, batch)

    def _watch_broker(self) -> None:
        while not self._stopped.wait(PROBE_INTERVAL_S):  # woken at once by close()
            self.broker = self._probe()

    def _probe(self) -> BrokerState:
        """A metadata request for the topic: the broker answers and the topic has a leader per partition."""
        try:
            meta = self._producer.list_topics(self.topic, timeout=PROBE_INTERVAL_S)
        except KafkaException as exc:
            return BrokerState(False, time.time(), f"Kafka at {self.bootstrap} is unreachable: {exc.args[0].str()}")
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            reason = topic.error.str() if topic is not None and topic.error else "unknown topic"
            return BrokerState(False, time.time(), f"topic {self.topic!r} is not available: {reason}")
        leaderless = [p for p, part in topic.partitions.items() if part.leader < 0]
        if not topic.partitions or leaderless:
            return BrokerState(False, time.time(), f"partitions {leaderless} of {self.topic!r} have no leader")
        return BrokerState(True, time.time(), None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"acked": self.acked, "failed": self.failed, "in_flight": self.in_flight}

    def close(self, timeout_s: float = 30.0) -> int:
        """Flush what is queued and stop the threads; returns how many events were still not delivered."""
        left = self._producer.flush(timeout_s)
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=PROBE_INTERVAL_S * 3)
        self._hand_over()
        return left


def _settle(batch: list[tuple[asyncio.Future, Any]]) -> None:
    for future, err in batch:
        if not future.done():  # a request that timed out on its own has stopped waiting
            future.set_result(err)
