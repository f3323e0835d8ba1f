"""`python -m bench [name ...]`: run benchmarks against the embedded stack (started when needed)."""

from __future__ import annotations

import sys
import time

from lib.errors import ConfigError

try:  # the sizes are read as the modules load (bench/scale.py)
    from bench import bounded_backlog, medallion, produce_rate, service_load, stream_latency, throughput
except ConfigError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)

BENCHMARKS = {"produce": produce_rate.main, "medallion": medallion.main, "stream": stream_latency.main,
              "backlog": bounded_backlog.main, "service": service_load.main, "throughput": throughput.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    took = {}
    for name in names:  # each benchmark starts (and stops) what it needs
        began = time.monotonic()
        BENCHMARKS[name]()
        took[name] = time.monotonic() - began
        print(f"\n`python -m bench {name}` took {took[name]:.0f} s\n", flush=True)
    if len(took) > 1:
        print("seconds per benchmark: " + ", ".join(f"{n} {s:.0f}" for n, s in took.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
