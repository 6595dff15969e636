"""The Reel2Rig extension's package: Blender imports it as ``bl_ext.<repository>.reel2rig`` and calls register() and
unregister() from ``addon/``. Imported outside a package (pytest collecting a checkout whose folder name is not a
Python name, such as ``reel2rig-main``), there is no parent for the relative import and it exports nothing."""
if __package__:
    from .addon import register, unregister

    __all__ = ("register", "unregister")
