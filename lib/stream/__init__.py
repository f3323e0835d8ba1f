"""The Flink stream: the job's SQL (job), its lifecycle (lifecycle), Flink's REST client (rest), the
submit entry point that runs in .venv-flink (submit), a row's latency legs (latency).

Kept free of imports: the submitting interpreter imports modules of this package from .venv-flink,
which has PyFlink but not the notebooks' packages. The job's record rule runs on the JVM (jars/rules).
"""
