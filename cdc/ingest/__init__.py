"""Ingest: HubSpot webhooks, the HubSpot reconciler and the Dataverse poller, publishing change events."""

__all__: list[str] = []
