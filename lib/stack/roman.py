"""The Roman Numeral Service as a stack process: `python -m lib.service.server` on ROMAN_SERVICE_URL."""

from __future__ import annotations

from lib.config import ROOT, Settings
from lib.service.process import command
from lib.stack.base import Service, http_json


class RomanService(Service):
    """The Roman Numeral Service (lib/service/), which answers once Kafka has the request's event."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.service_address
        super().__init__("roman-service", addr.host, addr.port, "ROMAN_SERVICE_URL")

    def command(self, cfg: Settings) -> list[str]:
        return command(self.host, self.port, cfg.kafka_bootstrap_servers, cfg.events_topic,
                       cfg.service_ack_timeout_s)

    def environment(self, cfg: Settings) -> dict[str, str]:
        # Its settings go as arguments (command above), never through the parent's environment.
        return {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }

    def healthy(self, cfg: Settings) -> bool:
        try:
            return http_json(f"{cfg.roman_service_url}/health").get("status") == "ok"
        except (OSError, ValueError):
            return False
