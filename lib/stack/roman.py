"""The Roman Numeral Service as a stack process: `python -m lib.service.api` on ROMAN_SERVICE_URL."""

from __future__ import annotations

import sys

from lib.config import ROOT, Settings
from lib.stack.base import Service, http_json


class RomanService(Service):
    """The Roman Numeral Service (lib/service/api.py), which publishes an event per request."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.service_address
        super().__init__("roman-service", addr.host, addr.port, "ROMAN_SERVICE_URL")

    def command(self, cfg: Settings) -> list[str]:
        return [sys.executable, "-m", "lib.service.api", "--host", self.host, "--port", str(self.port)]

    def environment(self, cfg: Settings) -> dict[str, str]:
        # The service is its own process with its own edge: hand it these settings, not the parent's environment.
        return {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap_servers,
            "EVENTS_TOPIC": cfg.events_topic,
            "ROMAN_SERVICE_URL": cfg.roman_service_url,
        }

    def healthy(self, cfg: Settings) -> bool:
        try:
            return http_json(f"{cfg.roman_service_url}/health").get("status") == "ok"
        except (OSError, ValueError):
            return False
