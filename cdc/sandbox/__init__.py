"""Local HubSpot and Dataverse emulators (starlette), faithful to the public APIs the daemon uses.

`cdc sandbox` runs both; `run_sandbox()` runs them inside a test or the demo. Each emulator keeps its
state in memory, counts API calls per endpoint, takes fault knobs, and has an admin API under ``/_admin``.
"""

__all__: list[str] = []
