"""The Roman Numeral Service: the HTTP API (api), its server process (server), the Kafka publisher
that acknowledges each event before the API answers (publisher); its client is lib.traffic.client. What an
event is and what a conversion answers are the contract's (lib.contract)."""
