from .addon import register, unregister

__all__ = ("register", "unregister")
