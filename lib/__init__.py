"""The workbook's helper package; its subpackages are the boxes of the architecture diagram, in layers
(bottom to top; a module imports only from its own layer or those below, which `make lint` checks):

    errors, config  one error base; every setting, read once at an edge
    contract/  the event schemas, the Roman rules, the dead-letter and reject reasons
    kafka, faults, stack/  the events topic's clients; crash and race points; the embedded stack
    service/, traffic/  the HTTP API; its client, reproducible batches and live traffic
    medallion/, stream/  Spark and Iceberg (Bronze, Silver, Gold, invariants); the Flink job
    jobs/      notebooks as jobs: registry, runner, scheduler, run history, alerts, Airflow
    workbook/  what only notebooks and `make run` use: the opening cell, charts, drills, `make run`
    __main__   the one CLI
"""
