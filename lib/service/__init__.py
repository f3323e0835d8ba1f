"""The Roman Numeral Service: the domain (roman), the event contract (events), the HTTP API (api)
and its one client (client)."""
