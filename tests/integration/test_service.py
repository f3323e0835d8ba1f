"""The Roman Numeral Service on the real broker: its contract, fuzzed from /openapi.json, and its durability.

Each test module's service is a process of its own (`lib.stack.roman.serving`) on a free port,
publishing to a topic of its own, so what it emitted can be read back exactly: an answered
conversion is one event on that topic, and nothing else is.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from lib import stack
from lib.config import Settings
from lib.contract.events import validation_reason
from lib.kafka import end_offsets, ensure_topic, read_range
from lib.stack.roman import serving

pytestmark = pytest.mark.integration
ACK_TIMEOUT_S = 3


@dataclass
class Service:
    url: str
    topic: str
    proc: subprocess.Popen
    cfg: Settings

    def events(self) -> Counter:
        """event_id -> how many records of this service's topic carry it."""
        ends = end_offsets(self.cfg.kafka_bootstrap_servers, self.topic)
        records = read_range(self.cfg.kafka_bootstrap_servers, self.topic, {}, ends)
        return Counter(json.loads(r.value)["event_id"] for r in records)

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(self.url + path, headers={k.replace("_", "-"): v for k, v in headers.items()}, timeout=30)


@pytest.fixture(scope="module")
def service(live_stack: Settings) -> Iterator[Service]:
    topic = f"service-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, live_stack.events_partitions)
    with serving(live_stack.kafka_bootstrap_servers, topic, ACK_TIMEOUT_S) as server:
        yield Service(server.url, topic, server.proc, live_stack)


def test_an_answer_means_its_event_is_on_the_topic(service: Service) -> None:
    before = service.get("/health").json()["events"]["acked"]
    rid = str(uuid.uuid4())
    ok = service.get("/to-roman/1994", X_User_Id="alice", X_Request_Id=rid)
    assert (ok.status_code, ok.json()["output"], ok.json()["event_id"]) == (200, "MCMXCIV", rid)
    assert ok.headers["X-Request-Id"] == rid
    refused = service.get("/from-roman/IIII")
    assert refused.status_code == 400 and "canonical" in refused.json()["error"]
    assert refused.json()["output"] is None
    events = service.events()
    assert events[rid] == 1 and events[refused.json()["event_id"]] == 1
    assert service.get("/health").json()["events"]["acked"] == before + 2
    assert service.get("/ready").json() == {"ready": True, "reason": None}


@pytest.mark.parametrize(("path", "headers", "status", "needle"), [
    ("/to-greek/5", {}, 404, "/to-roman/{n}"),
    ("/to-roman/5", {"X-Request-Id": "not-a-uuid"}, 422, "X-Request-Id"),
    ("/to-roman/" + "1" * 65, {}, 422, "at most 64 characters"),
    ("/to-roman/5", {"X-User-Id": "u" * 65}, 422, "X-User-Id"),
    ("/to-roman/5", {"X-Client": "my app!"}, 422, "X-Client"),
])
def test_what_is_not_a_conversion_is_refused_and_emits_nothing(service: Service, path: str, headers: dict,
                                                              status: int, needle: str) -> None:
    before = sum(service.events().values())
    answer = requests.get(service.url + path, headers=headers, timeout=10)
    assert answer.status_code == status and needle in answer.json()["error"], answer.text
    assert sum(service.events().values()) == before


def test_a_service_switched_to_schema_v2_names_the_client_and_its_events_are_valid(live_stack: Settings) -> None:
    topic = f"service-v2-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, live_stack.events_partitions)
    with serving(live_stack.kafka_bootstrap_servers, topic, ACK_TIMEOUT_S, schema_version=2) as server:
        assert requests.get(server.url + "/health", timeout=10).json()["schema_version"] == 2
        named = requests.get(server.url + "/to-roman/1994", headers={"X-Client": "ios"}, timeout=10)
        unnamed = requests.get(server.url + "/from-roman/IIII", timeout=10)
        assert (named.status_code, unnamed.status_code) == (200, 400)
    records = read_range(live_stack.kafka_bootstrap_servers, topic, {},
                         end_offsets(live_stack.kafka_bootstrap_servers, topic))
    docs = {doc["event_id"]: doc for doc in (json.loads(r.value) for r in records)}
    assert docs[named.json()["event_id"]]["client"] == "ios" and docs[unnamed.json()["event_id"]]["client"] == "unknown"
    assert all(doc["schema_version"] == 2 and validation_reason(json.dumps(doc)) is None for doc in docs.values())


def test_the_contract_is_an_openapi_document(service: Service) -> None:
    doc = service.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/to-roman/{n}", "/from-roman/{numeral}", "/health", "/ready"} <= set(doc["paths"])
    unavailable = doc["paths"]["/to-roman/{n}"]["get"]["responses"]["503"]
    assert "Retry-After" in unavailable["headers"]
    assert service.get("/docs").status_code == 200


def test_fuzzed_from_its_own_contract_and_every_conversion_is_one_event(service: Service) -> None:
    """schemathesis generates requests from /openapi.json: valid ones and ones that break the schema."""
    # A schema-valid input the domain refuses (0, "abc", "IIII") is a 400 by contract, and still an event.
    config = schemathesis.config.SchemathesisConfig.from_str(
        '[checks.positive_data_acceptance]\nexpected-statuses = ["200", "400"]\n'
    )
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=config)
    answered: Counter = Counter()
    session = requests.Session()

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(GenerationMode.NEGATIVE))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(session=session)
        assert response.status_code < 500, response.text  # the broker is up: no 5xx at all
        if case.operation.path in ("/to-roman/{n}", "/from-roman/{numeral}") and response.status_code in (200, 400):
            answered[response.json()["event_id"]] += 1

    before = service.events()
    fuzz()
    emitted = service.events() - before
    assert sum(answered.values()) > 50, answered  # the fuzzing did reach the conversions
    assert emitted == answered


@dataclass
class Traffic:
    """Clients asking in a loop, each request with its own X-Request-Id; what each got back."""

    service: Service
    answers: list[tuple[str, int, float]] = field(default_factory=list)  # (request id, status, monotonic time)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, clients: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, i: int) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            rid, n = str(uuid.uuid4()), n + 1
            try:
                status = session.get(f"{self.service.url}/to-roman/{n % 3999 + 1}",
                                     headers={"X-Request-Id": rid, "X-User-Id": f"client-{i}"}, timeout=30).status_code
            except requests.ConnectionError as exc:  # the service stopped accepting: that request was never answered
                self.errors.append(type(exc).__name__)
                return
            self.answers.append((rid, status, time.monotonic()))

    def acknowledged(self) -> set[str]:
        return {rid for rid, status, _ in self.answers if status in (200, 400)}


def test_no_200_while_the_broker_is_away_and_recovery_without_a_restart(service: Service) -> None:
    pid = service.proc.pid
    traffic = Traffic(service)
    threads = traffic.run(4)
    time.sleep(2)
    stack.down(service.cfg, ["kafka"])
    stopped = time.monotonic()
    try:
        deadline = time.monotonic() + 10
        while service.get("/ready").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert service.get("/ready").json()["ready"] is False
        rid = str(uuid.uuid4())
        began = time.monotonic()
        away = service.get("/to-roman/5", X_Request_Id=rid)
        assert away.status_code == 503 and time.monotonic() - began < 10
        assert int(away.headers["Retry-After"]) >= 1 and away.json()["event_id"] == rid
    finally:
        stack.up(service.cfg, ["kafka"], quiet=True)
    deadline = time.monotonic() + 60
    while service.get("/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    back = service.get("/to-roman/5", X_Request_Id=rid)
    assert back.status_code == 200 and back.json()["event_id"] == rid
    time.sleep(2)
    traffic.stop.set()
    for thread in threads:
        thread.join(30)

    events = service.events()
    assert service.proc.pid == pid and service.proc.poll() is None  # the same process throughout
    assert not traffic.errors, traffic.errors
    assert sum(status == 503 for _, status, when in traffic.answers if when > stopped) > 0
    missing = [r for r in traffic.acknowledged() if r not in events]
    assert not missing, f"{len(missing)} requests answered 200/400 whose event is not on the topic"
    assert events[rid] >= 1  # the retry landed; the 503'd attempt may have too: Bronze keeps one
    health = service.get("/health").json()
    assert health["broker"]["connected"] and health["events"]["failed"] > 0


def test_sigterm_answers_every_request_in_flight_then_exits(live_stack: Settings) -> None:
    topic = f"service-stop-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, live_stack.events_partitions)
    with serving(live_stack.kafka_bootstrap_servers, topic, ACK_TIMEOUT_S) as server:
        proc = server.proc
        service = Service(server.url, topic, proc, live_stack)
        traffic = Traffic(service)
        threads = traffic.run(8)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        # Uvicorn re-raises the signal once it has shut down gracefully, so a supervisor sees why it ended.
        assert proc.wait(timeout=ACK_TIMEOUT_S + 10) in (0, -signal.SIGTERM)
        stopped_in = time.monotonic() - began
        traffic.stop.set()
        for thread in threads:
            thread.join(10)
    events = service.events()
    assert len(traffic.acknowledged()) > 100
    assert any(when >= began for _, _, when in traffic.answers), "no request in flight at SIGTERM was answered"
    assert {status for _, status, _ in traffic.answers} <= {200, 503}
    assert set(traffic.errors) <= {"ConnectionError"}, traffic.errors  # later requests found the door closed
    assert traffic.acknowledged() <= set(events), "a request answered 200 has no event on the topic"
    assert stopped_in < ACK_TIMEOUT_S + 5
