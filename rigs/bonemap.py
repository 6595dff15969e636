"""Bone maps: which bone of a skeleton plays each canonical joint (:mod:`rigs.humanoid`). No bpy, no numpy.

A map is a TOML file (``rigs/maps/<id>.toml`` built in; more in the user's presets folder)::

    [rig]
    id = "mixamo"
    name = "Mixamo"
    description = "…"
    translation_bone = "Hips"        # carries the root path (default: the hips bone)
    priority = 0                     # breaks detection ties between maps of the same names (higher wins)

    [bones]                          # canonical joint → bone name (without a "mixamorig:"-style namespace)
    hips = "Hips"
    "upper_arm.L" = "LeftArm"

    [[properties]]                   # optional: custom properties keyed to a constant (Rigify's IK/FK switches)
    bone = "upper_arm_parent.L"
    name = "IK_FK"
    value = 1.0

    [effective_parents]              # optional: bone → the bone it really moves with (constraints, not parenting)
    "upper_arm_fk.L" = "shoulder.L"

Armature bone names are compared after stripping a namespace (everything up to the last ``:``), so one Mixamo map
fits ``mixamorig:Hips``, ``mixamorig1:Hips`` and ``Hips``.

Detection scores a map against an armature's bone names and hierarchy (:func:`score`); :func:`detect` ranks every
known map. User presets override built-in maps with the same id.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import humanoid

BUILTIN_DIR = Path(__file__).resolve().parent / "maps"
_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class MapError(Exception):
    """A map file is missing, unreadable or malformed; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class PropertyKey:
    bone: str
    name: str
    value: float


@dataclasses.dataclass(frozen=True)
class BoneMap:
    id: str
    name: str
    bones: Mapping[str, str]  # canonical joint → bone name (no namespace)
    description: str = ""
    translation_bone: str | None = None
    properties: tuple[PropertyKey, ...] = ()
    effective_parents: Mapping[str, str] = dataclasses.field(default_factory=dict)
    priority: int = 0  # detection tie-break: of two maps fitting equally well, the higher wins
    path: str | None = None  # where it was read from
    builtin: bool = False

    @property
    def translation(self) -> str | None:
        """The bone that carries the root path: ``translation_bone``, else the hips bone."""
        return self.translation_bone or self.bones.get("hips")

    def with_bones(self, bones: Mapping[str, str], **changes: object) -> "BoneMap":
        return dataclasses.replace(self, bones=dict(bones), **changes)  # type: ignore[arg-type]


def strip_namespace(bone_name: str) -> str:
    """``mixamorig:LeftArm`` → ``LeftArm``."""
    return bone_name.rsplit(":", 1)[-1]


def _check_bones(bones: Mapping[str, object], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for joint, bone in bones.items():
        if joint not in humanoid.PARENT:
            close = [n for n in humanoid.NAMES if n.split(".")[0] == joint.split(".")[0]][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise MapError(f"{where}: '{joint}' is not a canonical joint{hint}; the names are listed in "
                           "rigs/humanoid.py")
        if not isinstance(bone, str) or not bone:
            raise MapError(f"{where}: bones.{joint} must be a bone name (a non-empty string)")
        out[joint] = bone
    taken: dict[str, str] = {}
    for joint, bone in out.items():
        if bone in taken:
            raise MapError(f"{where}: bone '{bone}' is mapped to both '{taken[bone]}' and '{joint}'")
        taken[bone] = joint
    return out


def from_dict(data: Mapping[str, object], where: str, path: str | None = None, builtin: bool = False) -> BoneMap:
    rig = data.get("rig")
    if not isinstance(rig, dict):
        raise MapError(f"{where}: missing the [rig] table (id, name)")
    map_id = rig.get("id") or (Path(path).stem if path else None)
    if not isinstance(map_id, str) or not _ID_RE.match(map_id):
        raise MapError(f"{where}: rig.id must be a simple name (letters, digits, _ . -), got {map_id!r}")
    bones = data.get("bones")
    if not isinstance(bones, dict) or not bones:
        raise MapError(f"{where}: the [bones] table is missing or empty")
    props = []
    raw_props = data.get("properties") or []
    if not isinstance(raw_props, list):
        raise MapError(f"{where}: properties must be a list of {{bone, name, value}} tables")
    for i, entry in enumerate(raw_props):
        try:
            props.append(PropertyKey(str(entry["bone"]), str(entry["name"]), float(entry["value"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise MapError(f"{where}: properties[{i}] needs bone, name and a numeric value ({exc})") from exc
    eff = data.get("effective_parents", {}) or {}
    if not isinstance(eff, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in eff.items()):
        raise MapError(f"{where}: [effective_parents] must map bone names to bone names")
    translation = rig.get("translation_bone")
    priority = rig.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise MapError(f"{where}: rig.priority must be an integer, got {priority!r}")
    return BoneMap(priority=priority, id=map_id, name=str(rig.get("name") or map_id), description=str(rig.get("description") or ""),
                   bones=_check_bones(bones, where), translation_bone=str(translation) if translation else None,
                   properties=tuple(props), effective_parents=dict(eff), path=path, builtin=builtin)


def load(path: str | os.PathLike[str], builtin: bool = False) -> BoneMap:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise MapError(f"{p}: bone map not found") from exc
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MapError(f"{p}: not a readable TOML bone map ({exc}); fix the file or delete it") from exc
    return from_dict(data, str(p), path=str(p), builtin=builtin)


def _toml_str(value: str) -> str:
    # JSON's string escapes (\" \\ \n \t \uXXXX …) are all valid in TOML basic strings.
    return json.dumps(value, ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else _toml_str(key)


def dumps(bone_map: BoneMap) -> str:
    """The map as TOML, canonical joints in skeleton order (readable and diff-friendly)."""
    lines = ["[rig]", f"id = {_toml_str(bone_map.id)}", f"name = {_toml_str(bone_map.name)}"]
    if bone_map.description:
        lines.append(f"description = {_toml_str(bone_map.description)}")
    if bone_map.translation_bone:
        lines.append(f"translation_bone = {_toml_str(bone_map.translation_bone)}")
    if bone_map.priority:
        lines.append(f"priority = {int(bone_map.priority)}")
    lines += ["", "[bones]"]
    order = {name: i for i, name in enumerate(humanoid.NAMES)}
    for joint in sorted(bone_map.bones, key=lambda j: order.get(j, len(order))):
        lines.append(f"{_toml_key(joint)} = {_toml_str(bone_map.bones[joint])}")
    for prop in bone_map.properties:
        lines += ["", "[[properties]]", f"bone = {_toml_str(prop.bone)}", f"name = {_toml_str(prop.name)}",
                  f"value = {float(prop.value)!r}"]
    if bone_map.effective_parents:
        lines += ["", "[effective_parents]"]
        lines += [f"{_toml_key(k)} = {_toml_str(v)}" for k, v in bone_map.effective_parents.items()]
    return "\n".join(lines) + "\n"


def save(bone_map: BoneMap, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``<folder>/<id>.toml`` atomically. Refuses to replace an existing file unless ``overwrite``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bone_map.id}.toml"
    if path.exists() and not overwrite:
        raise MapError(f"{path} already exists; choose another preset name or allow overwriting")
    text = dumps(bone_map)
    from_dict(tomllib.loads(text), str(path))  # what we write must read back
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def builtin_maps() -> dict[str, BoneMap]:
    return {p.stem: load(p, builtin=True) for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def all_maps(user_dir: str | os.PathLike[str] | None = None,
             errors: list[str] | None = None) -> dict[str, BoneMap]:
    """Built-in maps, then the user's presets (a user preset with a built-in's id replaces it).

    A broken user preset is skipped and its error appended to ``errors`` (one bad file must not hide the others).
    """
    maps = builtin_maps()
    if user_dir and Path(user_dir).is_dir():
        for p in sorted(Path(user_dir).glob("*.toml")):
            try:
                m = load(p)
            except MapError as exc:
                if errors is not None:
                    errors.append(str(exc))
                continue
            maps[m.id] = m
    return maps


# ----------------------------------------------------------------------------------------------------------------
# matching a map to an armature


@dataclasses.dataclass(frozen=True)
class Match:
    """How well a map fits an armature. ``bones`` is canonical joint → the armature's real bone name."""
    map: BoneMap
    score: float  # 0..1
    bones: Mapping[str, str]
    missing: tuple[str, ...]  # canonical joints the map names but the armature lacks
    hierarchy_errors: tuple[str, ...]


def plain_lookup(bone_names: Sequence[str]) -> dict[str, str]:
    """Name as a map writes it → the armature's real name (exact names first, then namespace-stripped ones)."""
    by_plain: dict[str, str] = {}
    for name in bone_names:
        by_plain.setdefault(name, name)
    for name in bone_names:
        by_plain.setdefault(strip_namespace(name), name)
    return by_plain


def resolve(bone_map: BoneMap, bone_names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Canonical → real bone names of this armature (namespaces allowed), and the joints whose bone is absent."""
    by_plain = plain_lookup(bone_names)
    found, missing = {}, []
    for joint, bone in bone_map.bones.items():
        real = by_plain.get(bone)
        if real is None:
            missing.append(joint)
        else:
            found[joint] = real
    return found, missing


def _ancestors(bone: str, parents: Mapping[str, str | None]) -> set[str]:
    out: set[str] = set()
    p = parents.get(bone)
    while p is not None and p not in out:
        out.add(p)
        p = parents.get(p)
    return out


def hierarchy_errors(bones: Mapping[str, str], parents: Mapping[str, str | None],
                     effective_parents: Mapping[str, str] | None = None) -> list[str]:
    """Mapped joints whose canonical parent's bone is not an ancestor of their bone (following effective parents)."""
    eff = dict(parents)
    for bone, parent in (effective_parents or {}).items():
        if bone in eff:
            eff[bone] = parent
    errors = []
    mapped = set(bones)
    for joint, bone in bones.items():
        parent_joint = humanoid.mapped_parent(joint, mapped)
        if parent_joint is None:
            continue
        if bones[parent_joint] not in _ancestors(bone, eff):
            errors.append(f"{joint} ({bone}) is not below {parent_joint} ({bones[parent_joint]})")
    return errors


def score(bone_map: BoneMap, bone_names: Sequence[str], parents: Mapping[str, str | None]) -> Match:
    """Fraction of the map's bones present (the body core counts double) × fraction in the right hierarchy."""
    found, missing = resolve(bone_map, bone_names)
    if not bone_map.bones:
        return Match(bone_map, 0.0, {}, (), ())

    def weight(joint: str) -> float:
        return 2.0 if joint in humanoid.BODY_CORE else 1.0

    total = sum(weight(j) for j in bone_map.bones)
    present = sum(weight(j) for j in found)
    lookup = plain_lookup(bone_names)
    real_eff = {lookup.get(b, b): lookup.get(p, p) for b, p in bone_map.effective_parents.items()}
    errors = hierarchy_errors(found, parents, real_eff)
    ordered = len(found) - len(errors)
    s = (present / total) * (ordered / len(found) if found else 0.0)
    return Match(bone_map, s, found, tuple(missing), tuple(errors))


def detect(bone_names: Sequence[str], parents: Mapping[str, str | None],
           maps: Iterable[BoneMap]) -> list[Match]:
    """Every map scored against the armature, best first (ties: the higher priority, then the map covering more
    joints wins)."""
    matches = [score(m, bone_names, parents) for m in maps]
    return sorted(matches, key=lambda m: (-round(m.score, 6), -m.map.priority, -len(m.bones), m.map.id))
