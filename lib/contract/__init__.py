"""The contract every part keeps: the event schemas (v1 and v2), the Roman rules a conversion follows,
and the reasons a record is a dead letter or an event a reject. It imports nothing of the project but
`lib.errors`: the service, the traffic generator, the medallion and the stream all build on it, and
none of them needs another's package to know what an event is."""
