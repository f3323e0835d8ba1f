"""The workbook's helper package; its subpackages are the boxes of the architecture diagram.

    service/   the Roman Numeral Service: the domain, the event contract, the HTTP API, its client
    traffic/   reproducible batches with manifests, and live traffic
    kafka      the events topic: admin, offsets, producers, reading records back
    stream/    the Flink job: its SQL, its lifecycle, Flink's REST API, the submit entry point, UDFs
    medallion/ Spark and Iceberg: session, tables, Bronze, Silver, Gold, invariants
    jobs/      notebooks as jobs: papermill runs, parameters, `make run`
    stack/     the embedded stack: one module per service, process supervision, up/down/status
"""
