"""`cdc demo`: the product end to end on a local Kafka and the sandbox CRMs (``run``), with its data
(``seed``), its simulated user (``user``) and its live view of the writes (``view``)."""

__all__: list[str] = []
