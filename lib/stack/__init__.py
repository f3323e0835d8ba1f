"""The embedded stack: Kafka, the Iceberg REST catalog, a Flink session cluster and the Roman
Numeral Service as local processes, one module per service, supervised by `supervisor`."""

from lib.stack.supervisor import (
    ServiceStatus,
    down,
    format_status,
    kill,
    memory_bytes,
    require_up,
    running,
    select,
    services,
    status,
    up,
    with_storage,
)

__all__ = ["ServiceStatus", "down", "format_status", "kill", "memory_bytes", "require_up", "running", "select",
           "services", "status", "up", "with_storage"]
