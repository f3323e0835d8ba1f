"""The Spark driver JVM's own account of its heap: the peak of its old generation against the maximum.

The old generation holds what survived collections, so while a run holds its batch its peak follows the
batch's size; the maximum is `spark.driver.memory` (SPARK_DRIVER_MEMORY). Read from the JVM's memory pool
beans through py4j: no agent, no restart. The `bounded_backlog` benchmark and notebook 10's drill 9 use it.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

MIB = 2**20


class HeapPeak:
    """Resets the pools' peaks when made (and by `reset`); `read` gives (old generation peak, heap max) in MiB."""

    def __init__(self, spark: SparkSession) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self.jvm = jvm
        self.factory = jvm.java.lang.management.ManagementFactory
        self.reset()

    def reset(self, collect: bool = False) -> int:
        """Start a new peak; with `collect`, after a full collection, so the peak that follows is what the
        next run adds to what the session keeps. Returns the old generation in use now (MiB)."""
        if collect:
            self.jvm.java.lang.System.gc()
        for pool in self.factory.getMemoryPoolMXBeans():
            pool.resetPeakUsage()
        return round(sum(p.getUsage().getUsed() for p in self._old()) / MIB)

    def _old(self) -> list:
        return [p for p in self.factory.getMemoryPoolMXBeans() if "Old Gen" in p.getName()]

    def read(self) -> tuple[int, int]:
        old = [p.getPeakUsage().getUsed() for p in self._old()]
        heap_max = self.factory.getMemoryMXBean().getHeapMemoryUsage().getMax()
        return round(sum(old) / MIB), round(heap_max / MIB)
