"""An emulator of the OneClickDz Flexy API v3 sandbox, for tests, demos and crash drills."""

from .app import ConnectionDropped, EmulatorApp, EmulatorTransport, create_app
from .state import SANDBOX_KEY, ApiKey, Faults, Variants, World

__all__ = [
    "SANDBOX_KEY",
    "ApiKey",
    "ConnectionDropped",
    "EmulatorApp",
    "EmulatorTransport",
    "Faults",
    "Variants",
    "World",
    "create_app",
]
