"""The HubSpot emulator: CRM objects, properties, associations, owners and search in the legacy (v3/v4),
2026-03 and 2026-09 API versions, validation rules, rate limits, signed webhooks.

See :mod:`cdc.sandbox.hubspot.app` for the entry point and :mod:`cdc.sandbox.hubspot.admin` for the
admin API.
"""

from cdc.sandbox.hubspot.app import HubSpotSandbox

__all__ = ["HubSpotSandbox"]
