"""Traffic for the events topic, the service's clients: reproducible batches (plan, produce, manifest),
live traffic, and the one HTTP client of the Roman Numeral Service (client) they send through."""
