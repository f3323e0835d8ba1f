"""The batch medallion on Spark and Iceberg: the session, the tables, Bronze, Silver, Gold, the
invariants that check them, and the Spark UDFs that apply the event contract's rules."""
