"""The opening every notebook shares: make sure the stack runs, and say what it runs on."""

from __future__ import annotations

import pandas as pd

from lib import stack
from lib.versions import versions


def setup() -> pd.DataFrame:
    """Start whatever part of the stack is down (a no-op when it runs) and return the versions table."""
    stack.up(quiet=True)
    table = pd.DataFrame(sorted(versions().items()), columns=["component", "version"])
    return table.set_index("component")


def stack_table() -> pd.DataFrame:
    """Service, address, healthy: the status table without pids (they change every run)."""
    rows = [(r.service, r.address, r.healthy) for r in stack.status()]
    return pd.DataFrame(rows, columns=["service", "address", "healthy"]).set_index("service")
