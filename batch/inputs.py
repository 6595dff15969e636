"""What a batch converts: the command line's inputs expanded into clips, each with a unique, stable name.

No bpy, no torch. Rules (README › Studios):

* a **file** named on the command line is a clip, whatever its suffix (a file that is not a video then fails as that
  clip, with the engine's message, instead of vanishing from the batch);
* a **folder** is searched recursively: video files (:data:`VIDEO_SUFFIXES`) are clips; a folder that holds images
  (:data:`inference_server.video.IMAGE_SUFFIXES`) and no videos is one image-sequence clip; other files are ignored
  and counted; hidden files and folders (``.name``) are skipped;
* a **glob** (``'shots/**/*.mov'``, quoted so the shell leaves it) is expanded here, recursively, in sorted order;
* the same file reached twice (two inputs overlap) is one clip.

A clip's name is its path relative to the input it came from, with ``/`` written as ``__`` and the video suffix
dropped (``day1/take3.mp4`` → ``day1__take3``); a clip named on its own is its file's stem. Names that would
collide (``a.mp4`` and ``a.mov``) keep their suffix (``a.mp4``, ``a.mov``). The name is the clip's folder in the
output and the prefix of every file written for it.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path

from inference_server.video import IMAGE_SUFFIXES

#: Suffixes (lower case) taken for video files when a folder is searched.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
                  ".m2ts", ".ts", ".3gp", ".mxf", ".ogv")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-]+")


class InputError(Exception):
    """An input names nothing usable (a missing path, a glob that matches nothing). ``fix`` says what to do."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str          # unique in the batch; the output folder's name
    source: Path       # absolute: a video file or an image-sequence folder
    kind: str          # "video" | "sequence"

    def fingerprint(self) -> dict:
        """What says the input is unchanged since a finished run: size and modification time (the newest image's,
        and the count, for a sequence)."""
        if self.kind == "sequence":
            images = [p for p in self.source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            return {"images": len(images), "bytes": sum(p.stat().st_size for p in images),
                    "mtime": max((p.stat().st_mtime for p in images), default=0.0)}
        try:
            stat = self.source.stat()
        except OSError:
            return {"missing": True}
        return {"bytes": stat.st_size, "mtime": stat.st_mtime}


@dataclasses.dataclass
class Expansion:
    clips: list[Clip]
    ignored: list[Path]    # files inside searched folders that are neither videos nor image sequences


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _walk(root: Path, found: list[tuple[Path, str, Path]], ignored: list[Path]) -> None:
    """(source, kind, base) for every clip under ``root``: base is what the name is made relative to."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = sorted(f for f in files if not f.startswith("."))
        videos = [here / f for f in names if _is_video(here / f)]
        images = [here / f for f in names if _is_image(here / f)]
        for video in videos:
            found.append((video, "video", root))
        if images and not videos:
            found.append((here, "sequence", root))
        elif images:
            ignored.extend(images)  # images beside videos are stills or thumbnails, not a sequence
        ignored.extend(here / f for f in names if not _is_video(here / f) and not _is_image(here / f))


def _raw_name(source: Path, kind: str, base: Path | None) -> str:
    if base is None or source == base:
        stem = source.name if kind == "sequence" else source.stem
        return stem
    rel = source.relative_to(base)
    parts = list(rel.parts)
    if kind == "video":
        parts[-1] = rel.stem
    if kind == "sequence" and not parts:
        parts = [source.name]
    return "__".join(parts)


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (``shots/day1/*.mp4`` → ``shots/day1``)."""
    fixed: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return Path(*fixed).absolute() if fixed else Path.cwd()


def _safe(name: str) -> str:
    name = _UNSAFE.sub("_", name).strip("._") or "clip"
    return name[:120]


def expand(inputs: list[str]) -> Expansion:
    """Every clip the inputs name, in order (inputs in the order given; inside a folder or glob, sorted)."""
    found: list[tuple[Path, str, Path | None]] = []
    ignored: list[Path] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            found.append((path.absolute(), "video", None))
        elif path.is_dir():
            root = path.absolute()
            before = len(found)
            _walk(root, found, ignored)  # type: ignore[arg-type]
            if len(found) == before and not any(root.iterdir()):
                raise InputError(f"{text}: the folder is empty", "put the clips in it, or name another folder")
        elif _GLOB_CHARS.search(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            matches = [m for m in matches if m.is_file() or (m.is_dir() and any(_is_image(p) for p in m.iterdir()))]
            if not matches:
                raise InputError(f"{text}: the pattern matches no file",
                                 "check the pattern (quote it so the shell does not expand it first)")
            base = _glob_base(os.path.expanduser(text))
            for match in matches:
                source = match.absolute()
                kind = "sequence" if source.is_dir() else "video"
                found.append((source, kind, base if source.is_relative_to(base) else None))
        else:
            raise InputError(f"{text}: no such file or folder",
                             "check the path (files, folders and quoted globs such as 'shots/**/*.mp4' are taken)")

    clips: list[Clip] = []
    seen: set[Path] = set()
    raw: list[tuple[Path, str, str]] = []
    for source, kind, base in found:
        if source in seen:
            continue
        seen.add(source)
        raw.append((source, kind, _safe(_raw_name(source, kind, base))))
    counts: dict[str, int] = {}
    for _, _, name in raw:
        counts[name] = counts.get(name, 0) + 1
    taken: set[str] = set()
    for source, kind, name in raw:
        if counts[name] > 1 and kind == "video":
            name = _safe(name + source.suffix)  # a.mp4 and a.mov
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}_{n}", n + 1
        taken.add(unique)
        clips.append(Clip(unique, source, kind))
    return Expansion(clips, ignored)
