"""Batch conversion for studios: many clips onto a rig, locally or on a Ray cluster (``./reel2rig batch``).

No bpy and no torch in this package: the engine (``inference_server``) and Blender (``addon.batch_export``) run as
subprocesses of each worker, so one clip's crash or memory never reaches the batch. Modules: ``inputs`` (what the
command line names → clips), ``settings``, ``clip`` (one worker: capture, overlay, Blender step, metrics),
``metrics``, ``store`` (the output folder, resumability, the summary files), ``local`` and ``ray_backend`` (how the
clips are spread), ``progress`` (the terminal display), ``cli``.
"""
