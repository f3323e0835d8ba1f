"""The Flink stream: the job's SQL (job), its lifecycle (lifecycle), Flink's REST client (rest), the
submit entry point that runs in .venv-flink (submit) and the Python UDF the taskmanager runs (udfs).

Kept free of imports: the taskmanager's Python worker and the submitting interpreter import
modules of this package from .venv-flink, which has PyFlink but not the notebooks' packages.
"""
