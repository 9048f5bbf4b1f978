"""`cdc bench`: benchmarks that run the real daemon processes against a real local Kafka and the sandbox,
each next to its baseline in the same run, printing a table and writing JSON to ``bench/results/``."""

__all__: list[str] = []
