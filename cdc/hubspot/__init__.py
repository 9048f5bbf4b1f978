"""The daemon's HubSpot edge: request-signature checks (and, as they land, the API client)."""

__all__: list[str] = []
