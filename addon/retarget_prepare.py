"""Retargeting a Take onto an armature, everything but Blender: choose the maps, solve, turn rotations into the
channels each pose bone keys (numpy + standard library, no bpy — unit-testable in plain pytest).

``retarget_apply`` reads the armature out of Blender into a :class:`rigs.retarget.Skeleton`, calls
:func:`prepare`, and writes what comes back as one new action.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

import numpy as np

from . import take_prepare

try:  # inside the extension
    from ..inference_server import take as take_format
    from ..rigs import bonemap, fk, footlock, retarget, rotations
except ImportError:  # checkout on sys.path (unit tests)
    from inference_server import take as take_format  # type: ignore[no-redef]
    from rigs import bonemap, fk, footlock, retarget, rotations  # type: ignore[no-redef]

AUTO = "AUTO"
#: A detected map must score at least this to be used without the user choosing one.
MIN_AUTO_SCORE = 0.6


class RetargetFailed(Exception):
    """The Take cannot go onto this armature; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class BoneChannels:
    bone: str
    prop: str  # "rotation_quaternion" | "rotation_euler" | "rotation_axis_angle" | "location"
    values: np.ndarray  # (T, n)


@dataclasses.dataclass(frozen=True)
class PreparedRetarget:
    name: str  # the clip's name
    frames: np.ndarray  # (T,) Blender frames
    channels: tuple[BoneChannels, ...]
    properties: tuple[tuple[str, str, float], ...]  # (bone, property, value) keyed constant
    source_map: bonemap.Match
    target_map: bonemap.Match
    result: retarget.Result
    unmatched: tuple[str, ...]  # canonical joints the Take has that the armature has no bone for
    missing_bones: tuple[str, ...]  # bones the map names that this armature lacks
    contacts: np.ndarray | None = None  # (T, 2) [left, right] feet pinned, when foot locking was on

    def report(self) -> str:
        parts = [f"{len(self.result.plan.pairs)} joints retargeted with the '{self.target_map.map.name}' map "
                 f"(match {self.target_map.score:.0%})"]
        if self.unmatched:
            parts.append(f"no bone for: {', '.join(self.unmatched)}")
        if self.missing_bones:
            parts.append(f"map bones not in this armature: {', '.join(self.missing_bones)}")
        return "; ".join(parts) + "."


def source_from_take(take: take_format.Take) -> tuple[retarget.Skeleton, np.ndarray]:
    """The Take's skeleton (armature at the world origin) and its posed armature matrices (T, J, 4, 4)."""
    names = take.bone_names
    parents = np.asarray(take["bone_parents"], dtype=int)
    rest = np.asarray(take["rest_matrices"], dtype=np.float64)
    world = fk.forward_kinematics(rest, parents, take["local_rotations_aa"], take["root_position_world"])
    return retarget.Skeleton(names, parents, rest), world


def parent_names(skeleton: retarget.Skeleton) -> dict[str, str | None]:
    return {name: (skeleton.names[p] if p >= 0 else None) for name, p in zip(skeleton.names, skeleton.parents)}


def choose_map(skeleton: retarget.Skeleton, maps: Mapping[str, bonemap.BoneMap], map_id: str = AUTO,
               what: str = "the armature") -> bonemap.Match:
    """The named map, or the best detected one (refusing a poor fit with the list of candidates)."""
    names = list(skeleton.names)
    parents = parent_names(skeleton)
    if map_id != AUTO:
        if map_id not in maps:
            raise RetargetFailed(f"no bone map '{map_id}'; known maps: {', '.join(sorted(maps))}")
        match = bonemap.score(maps[map_id], names, parents)
        if not match.bones:
            raise RetargetFailed(f"the '{maps[map_id].name}' map matches no bone of {what}; choose another map "
                                 "or save a preset for this rig")
        return match
    ranked = bonemap.detect(names, parents, maps.values())
    best = ranked[0] if ranked else None
    if best is None or best.score < MIN_AUTO_SCORE:
        tried = ", ".join(f"{m.map.id} {m.score:.0%}" for m in ranked[:4])
        raise RetargetFailed(f"no bone map fits {what} well enough to choose it automatically (best: {tried}); "
                             "pick a map, or make a preset for this rig (Reel2Rig › Retarget › Save Map)")
    return best


def rotation_channels(R: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(T, 3, 3) rotations → the pose bone property and its per-frame values for its rotation mode.

    Quaternions are made sign-continuous and Euler angles continuous, so interpolation never takes the long way.
    """
    if mode == "QUATERNION":
        return "rotation_quaternion", rotations.make_continuous(rotations.matrix_to_quat(R))
    if mode == "AXIS_ANGLE":  # Blender stores (angle, x, y, z)
        aa = rotations.matrix_to_aa(R)
        angle = np.linalg.norm(aa, axis=-1, keepdims=True)
        axis = np.where(angle > 1e-12, aa / np.maximum(angle, 1e-12), np.array([0.0, 1.0, 0.0]))
        return "rotation_axis_angle", np.concatenate([angle, axis], axis=-1)
    if mode in rotations.EULER_ORDERS:
        return "rotation_euler", rotations.euler_continuous(rotations.matrix_to_euler(R, mode), mode)
    raise RetargetFailed(f"unknown rotation mode {mode!r}")


def prepare(take: take_format.Take, target: retarget.Skeleton, rotation_modes: Mapping[str, str],
            maps: Mapping[str, bonemap.BoneMap], map_id: str = AUTO, frame_start: int = 1,
            rate: float | None = None, take_path: str | os.PathLike[str] = "take",
            foot_lock: bool = False) -> PreparedRetarget:
    """Solve the retarget of ``take`` onto ``target`` and lay out the keys.

    ``rotation_modes``: pose bone name → its rotation mode. ``rate``: the scene's frames per second (default: the
    Take's own). ``foot_lock``: pin feet in contact (rigs/footlock.py; contacts estimated from the Take's feet).
    Raises RetargetFailed.
    """
    source, source_world = source_from_take(take)
    source_match = choose_map(source, maps, AUTO, what="the Take's skeleton")
    target_match = choose_map(target, maps, map_id)
    lookup = bonemap.plain_lookup(list(target.names))
    bm = target_match.map
    translation = lookup.get(bm.translation) if bm.translation else None
    effective = {lookup[b]: lookup[p] for b, p in bm.effective_parents.items() if b in lookup and p in lookup}
    try:
        plan = retarget.plan(source, source_match.bones, target, target_match.bones, translation_bone=translation,
                             effective_parents=effective)
        result = retarget.solve(plan, source_world)
    except retarget.RetargetError as exc:
        raise RetargetFailed(str(exc)) from exc
    contacts = None
    if foot_lock:
        if "foot_contact" in take.arrays:   # the engine's own contacts (schema 1.3): [heel.L, toe.L, heel.R, toe.R]
            c = np.asarray(take["foot_contact"], dtype=np.float64)
            contacts = np.stack([c[:, :2].max(axis=1), c[:, 2:].max(axis=1)], axis=1) > 0.5
        else:
            contacts = footlock.estimate_contacts(plan, source_world, float(take["fps"]))
        result, _ = footlock.lock_feet(result, contacts)

    timestamps = np.asarray(take["timestamps"], dtype=np.float64)
    fps = float(rate) if rate else float(take["fps"])
    frames = take_prepare.key_frames(timestamps, frame_start, fps, where=str(take_path))

    channels = []
    for j in plan.keyed:
        name = target.names[j]
        prop, values = rotation_channels(result.local_rotations[:, j], rotation_modes.get(name, "QUATERNION"))
        channels.append(BoneChannels(name, prop, values))
    if plan.translation_bone >= 0:
        channels.append(BoneChannels(target.names[plan.translation_bone], "location", result.location))
    props = tuple((lookup[p.bone], p.name, p.value) for p in bm.properties if p.bone in lookup)
    return PreparedRetarget(name=take_prepare.clip_name(take_path, None), frames=frames, channels=tuple(channels),
                            properties=props, source_map=source_match, target_map=target_match, result=result,
                            unmatched=plan.unmatched_source, missing_bones=tuple(
                                target_match.map.bones[j] for j in target_match.missing), contacts=contacts)


def target_skeleton(names: Sequence[str], parents: Sequence[str | None], rest: np.ndarray,
                    object_matrix: np.ndarray) -> retarget.Skeleton:
    index = {n: i for i, n in enumerate(names)}
    return retarget.Skeleton(list(names), np.array([index[p] if p is not None else -1 for p in parents]),
                             np.asarray(rest, dtype=np.float64), np.asarray(object_matrix, dtype=np.float64))
