"""The sync engine's CRM port (`consumers.ports.CrmGateway`) over HTTP: one gateway per CRM."""

from cdc.gateways.dataverse import DataverseGateway, entity_set_name, open_dataverse_gateway
from cdc.gateways.hubspot import HubSpotGateway, open_hubspot_gateway

__all__ = [
    "DataverseGateway",
    "HubSpotGateway",
    "entity_set_name",
    "open_dataverse_gateway",
    "open_hubspot_gateway",
]
