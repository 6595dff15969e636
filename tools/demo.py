"""``./reel2rig demo``: the product's main job, headless, on the embedded sample clip (or a clip you name).

Builds the extension zip, installs it into a throw-away Blender user folder, runs the add-on's Capture operator
(which starts the real engine over JSON-RPC), then saves ``out/demo.blend`` and exports ``out/demo.fbx``, and an
overlay contact sheet ``out/demo_overlay.png`` to compare the fitted skeleton with the footage.

    .venv/bin/python tools/demo.py [VIDEO] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
PACKAGE = "bl_ext.user_default.reel2rig"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", default=str(SAMPLE), help="clip to capture (default: the sample)")
    parser.add_argument("--out", default=str(ROOT / "out"), help="output folder (default: out/)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    video = Path(args.video).resolve()
    started = time.perf_counter()

    user = tempfile.mkdtemp(prefix="reel2rig-demo-blender-")
    os.environ["BLENDER_USER_RESOURCES"] = user  # before bpy is imported: nothing goes to ~/.config/blender
    build = subprocess.run([sys.executable, str(ROOT / "tools" / "build_extension.py"), "--out", user],
                           capture_output=True, text=True)
    if build.returncode != 0:
        sys.stderr.write(build.stdout + build.stderr)
        return 1
    zip_path = build.stdout.strip().splitlines()[-1]

    print(f"[demo] Blender: installing the add-on from {Path(zip_path).name}", flush=True)
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if PACKAGE not in bpy.context.preferences.addons:
        sys.stderr.write(f"[demo] the add-on did not enable from {zip_path}\n")
        return 1
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.engine_python = sys.executable
    prefs.cache_dir = os.environ.get("REEL2RIG_CACHE", str(ROOT / ".cache"))

    print(f"[demo] capturing {video} with the engine (progress on stderr)", flush=True)
    result = bpy.ops.reel2rig.capture(video=str(video))
    if result != {"FINISHED"}:
        sys.stderr.write(f"[demo] capture failed: {result}\n")
        return 1
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    take_path = Path(armature["reel2rig_take"]) if "reel2rig_take" in armature else None

    blend = out / "demo.blend"
    fbx = out / "demo.fbx"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
    bpy.ops.object.select_all(action="DESELECT")
    armature.select_set(True)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.export_scene.fbx(filepath=str(fbx), use_selection=True, object_types={"ARMATURE"}, bake_anim=True,
                             add_leaf_bones=False)

    meta = {}
    if take_path is not None:
        sidecar = take_path.with_name(take_path.name.replace(".take.npz", ".take.json"))
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        from inference_server.overlay import contact_sheet

        contact_sheet(take_path, out / "demo_overlay.png", video)

    scene = bpy.context.scene
    print("\n[demo] done in %.1f s" % (time.perf_counter() - started))
    print(f"  frames: {meta.get('frames', '?')} (scene {scene.frame_start}-{scene.frame_end} at {scene.render.fps} fps)")
    print(f"  armature: {armature.name} with {len(armature.data.bones)} bones, action "
          f"{armature.animation_data.action.name if armature.animation_data and armature.animation_data.action else '-'}")
    for stage, info in meta.get("stages", {}).items():
        fps = info.get("fps")
        note = " (cached)" if info.get("cached") else ""
        print(f"  {stage:<7} {info['seconds']:7.2f} s" + (f"  {fps:7.1f} frames/s" if fps else "") + note)
    print(f"  blend:   {blend}\n  fbx:     {fbx}")
    if take_path is not None:
        print(f"  take:    {take_path}\n  overlay: {out / 'demo_overlay.png'}")
    from importlib import import_module

    import_module(f"{PACKAGE}.addon.engine_session").shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
