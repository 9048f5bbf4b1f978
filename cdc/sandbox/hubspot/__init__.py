"""The HubSpot emulator: CRM v3 objects, properties, associations v4, search, rate limits, signed webhooks.

See :mod:`cdc.sandbox.hubspot.app` for the entry point and :mod:`cdc.sandbox.hubspot.admin` for the
admin API.
"""

from cdc.sandbox.hubspot.app import HubSpotSandbox

__all__ = ["HubSpotSandbox"]
