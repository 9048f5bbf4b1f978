"""Tools around the product, never part of it: ``demo`` (`cdc demo`), ``bench`` (`cdc bench`) and
``devkafka`` (`cdc dev kafka`, the tests' broker). Only the CLI imports them, inside those commands."""

__all__: list[str] = []
