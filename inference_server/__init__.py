"""Reel2Rig inference engine: a separate process that turns video into a Take.

Never imports bpy. This package's ``__init__``, ``protocol`` and ``take`` modules are standard-library/numpy only, so
the add-on can import them inside Blender; everything heavy (torch, mediapipe, anny, cv2) is imported lazily by the
stages that need it.
"""
__version__ = "0.1.0"
