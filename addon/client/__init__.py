"""The add-on's engine client: spawns the engine process and talks JSON-RPC to it. No bpy, no torch."""
from .engine import (
    EngineClient,
    EngineDied,
    EngineError,
    EngineTimeout,
    Event,
    Failed,
    Finished,
    Progress,
    RpcCallError,
    default_root,
)

__all__ = [
    "EngineClient",
    "EngineDied",
    "EngineError",
    "EngineTimeout",
    "Event",
    "Failed",
    "Finished",
    "Progress",
    "RpcCallError",
    "default_root",
]
