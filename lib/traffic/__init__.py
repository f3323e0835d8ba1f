"""Traffic for the events topic: reproducible batches (plan, produce, manifest) and live traffic."""
