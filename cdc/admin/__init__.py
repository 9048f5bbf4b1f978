"""`cdc admin`: the sync health page, server-rendered (starlette, Jinja2), behind a login.

``app`` builds the ASGI app, ``security`` and ``passwords`` guard it, ``views`` are its pages (one module
each), ``source`` says what they read and ``kafka_source`` reads it from Kafka on every request, so any
replica serves any request.
"""

from cdc.admin.app import SESSION_COOKIE, create_app
from cdc.admin.passwords import hash_password, verify_password
from cdc.admin.source import HealthSource, NotFoundError

__all__ = [
    "SESSION_COOKIE",
    "HealthSource",
    "NotFoundError",
    "create_app",
    "hash_password",
    "verify_password",
]
