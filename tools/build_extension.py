#!/usr/bin/env python3
"""Build the Reel2Rig Blender extension zip with Blender's own extension CLI (no Blender binary needed).

    .venv/bin/python tools/build_extension.py [--out DIR]      # default DIR: <checkout>/dist

1. copy the checkout into a temporary staging folder, skipping what blender_manifest.toml's
   ``[build] paths_exclude_pattern`` excludes (matched with Blender's own pattern matcher, so .venv/ and .cache/
   are never even walked);
2. write ``build_info.json`` there (checkout path, git commit, build time): the installed add-on reads it to find
   the checkout's engine Python (``<checkout>/.venv/bin/python``) and cache;
3. run ``blender_ext.py validate STAGING`` and ``blender_ext.py build --source-dir STAGING --output-dir OUT``
   with this Python; ``blender_ext.py`` is found inside the installed ``bpy`` package without importing bpy;
4. print the zip's path (the last line of output).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
CLI_RELATIVE = Path("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")


class BuildError(Exception):
    pass


def find_blender_ext() -> Path:
    """``<site-packages>/bpy/<X.Y>/scripts/addons_core/bl_pkg/cli/blender_ext.py`` without importing bpy."""
    env = os.environ.get("REEL2RIG_BLENDER_EXT")
    if env:
        return Path(env)
    roots: list[Path] = []
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    import site

    for sp in site.getsitepackages() + [site.getusersitepackages()]:
        roots.append(Path(sp) / "bpy")
    for root in roots:
        hits = sorted(glob.glob(str(root / "*" / CLI_RELATIVE)))
        if hits:
            return Path(hits[-1])
    raise BuildError("cannot find Blender's extension CLI (blender_ext.py): install bpy in this Python "
                     "(`pip install bpy==5.0.1`) or set REEL2RIG_BLENDER_EXT to its path")


def load_cli(path: Path) -> ModuleType:
    """Import blender_ext.py (standard library only) to reuse its gitignore-style PathPatternMatch."""
    spec = importlib.util.spec_from_file_location("_reel2rig_blender_ext", path)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def stage(source: Path, staging: Path, patterns: list[str], matcher_cls: type) -> int:
    """Copy ``source`` into ``staging`` except excluded paths. Returns the number of files copied."""
    matcher = matcher_cls(patterns)
    count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = Path(dirpath).relative_to(source)
        kept = []
        for name in sorted(dirnames):
            rel = (rel_dir / name).as_posix()
            if not matcher.test_path(rel + "/") and not Path(dirpath, name).is_symlink():
                kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if matcher.test_path(rel):
                continue
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(dirpath, name), target)
            count += 1
    return count


def git_commit(source: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def git_dirty(source: Path) -> bool | None:
    try:
        out = subprocess.run(["git", "-C", str(source), "status", "--porcelain"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def run_cli(cli: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed (exit {proc.returncode}):\n{output}")
    return output


def build(out_dir: Path, source: Path = ROOT, verbose: bool = False) -> Path:
    manifest_path = source / "blender_manifest.toml"
    manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    patterns = list(manifest.get("build", {}).get("paths_exclude_pattern", []))
    cli = find_blender_ext()
    matcher_cls = load_cli(cli).PathPatternMatch
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reel2rig-build-") as tmp:
        staging = Path(tmp) / manifest["id"]
        staging.mkdir()
        count = stage(source, staging, patterns, matcher_cls)
        info = {
            "checkout": str(source),
            "commit": git_commit(source),
            "dirty": git_dirty(source),
            "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "version": manifest.get("version"),
            "builder": f"Python {sys.version.split()[0]}",
        }
        (staging / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if verbose:
            print(f"staged {count + 1} files in {staging}", file=sys.stderr)
        log = run_cli(cli, "validate", str(staging))
        if verbose:
            print(log, file=sys.stderr)
        zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
        if zip_path.exists():
            zip_path.unlink()
        log = run_cli(cli, "build", "--source-dir", str(staging), "--output-dir", str(out_dir))
        if verbose:
            print(log, file=sys.stderr)
    if not zip_path.is_file():
        raise BuildError(f"blender_ext.py build reported success but {zip_path} is missing:\n{log}")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the staging folder and the CLI's output")
    args = parser.parse_args(argv)
    try:
        zip_path = build(args.out.resolve(), verbose=args.verbose)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
