"""The canonical humanoid every skeleton and rig is mapped to (numpy-free, no bpy).

Retargeting between N source skeletons and M target rigs goes through one vocabulary: a bone map says, for each
canonical joint, which bone of a skeleton plays that part. Source skeletons (Anny, MANO, SMPL family) and target rigs
(Rigify, Mixamo, UE5, MPFB, SMPL-X style, generic) are described the same way, so any source drives any target.

Names are Blender-like with the subject's own side as a ``.L``/``.R`` suffix. Fingers follow anatomy, not any one
rig's numbering:

* ``thumb_1`` metacarpal (carpometacarpal joint at its head), ``thumb_2`` proximal, ``thumb_3`` distal phalanx;
* ``index_0`` … ``little_0`` metacarpals (optional: many rigs have none), ``*_1`` proximal, ``*_2`` middle,
  ``*_3`` distal phalanx.

Each joint's *aim* is the list of canonical joints whose head its direction points at, first mapped one wins (in
both the source and the target). A joint with no mapped aim uses its own bone axis (Blender's Y, head → tail).
"""
from __future__ import annotations

SIDES = ("L", "R")
FINGERS = ("index", "middle", "ring", "little")

_CENTRE: list[tuple[str, str | None]] = [
    ("hips", None),
    ("spine", "hips"),
    ("chest", "spine"),
    ("upper_chest", "chest"),
    ("neck", "upper_chest"),
    ("head", "neck"),
]


def _side_joints(s: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = [
        (f"shoulder.{s}", "upper_chest"),
        (f"upper_arm.{s}", f"shoulder.{s}"),
        (f"lower_arm.{s}", f"upper_arm.{s}"),
        (f"hand.{s}", f"lower_arm.{s}"),
        (f"thumb_1.{s}", f"hand.{s}"),
        (f"thumb_2.{s}", f"thumb_1.{s}"),
        (f"thumb_3.{s}", f"thumb_2.{s}"),
    ]
    for f in FINGERS:
        out += [(f"{f}_0.{s}", f"hand.{s}"), (f"{f}_1.{s}", f"{f}_0.{s}"), (f"{f}_2.{s}", f"{f}_1.{s}"),
                (f"{f}_3.{s}", f"{f}_2.{s}")]
    out += [
        (f"upper_leg.{s}", "hips"),
        (f"lower_leg.{s}", f"upper_leg.{s}"),
        (f"foot.{s}", f"lower_leg.{s}"),
        (f"toes.{s}", f"foot.{s}"),
    ]
    return out


#: Canonical joints in parent-before-child order with their canonical parent (the nearest one *if mapped*: a
#: skeleton without ``chest`` has its ``upper_chest`` under ``spine``; see :func:`mapped_parent`).
JOINTS: tuple[tuple[str, str | None], ...] = tuple(_CENTRE + _side_joints("L") + _side_joints("R"))
NAMES: tuple[str, ...] = tuple(name for name, _ in JOINTS)
PARENT: dict[str, str | None] = dict(JOINTS)


def _aims() -> dict[str, tuple[str, ...]]:
    aims: dict[str, tuple[str, ...]] = {
        "hips": ("spine", "chest", "upper_chest", "neck"),
        "spine": ("chest", "upper_chest", "neck"),
        "chest": ("upper_chest", "neck"),
        "upper_chest": ("neck", "head"),
        "neck": ("head",),
        "head": (),
    }
    for s in SIDES:
        aims.update({
            f"shoulder.{s}": (f"upper_arm.{s}",),
            f"upper_arm.{s}": (f"lower_arm.{s}",),
            f"lower_arm.{s}": (f"hand.{s}",),
            # The hand points at the middle knuckle (not a metacarpal head, which sits next to the wrist).
            f"hand.{s}": (f"middle_1.{s}", f"ring_1.{s}", f"index_1.{s}"),
            f"thumb_1.{s}": (f"thumb_2.{s}",),
            f"thumb_2.{s}": (f"thumb_3.{s}",),
            f"thumb_3.{s}": (),
            f"upper_leg.{s}": (f"lower_leg.{s}",),
            f"lower_leg.{s}": (f"foot.{s}",),
            f"foot.{s}": (f"toes.{s}",),
            f"toes.{s}": (),
        })
        for f in FINGERS:
            aims.update({f"{f}_0.{s}": (f"{f}_1.{s}",), f"{f}_1.{s}": (f"{f}_2.{s}",),
                         f"{f}_2.{s}": (f"{f}_3.{s}",), f"{f}_3.{s}": ()})
    return aims


AIM: dict[str, tuple[str, ...]] = _aims()

#: Aim-less joints whose rest alignment comes from several directions at once (see rigs/retarget.py): the hips
#: from the thighs (left-right) and up the spine.
REST_FRAME: dict[str, tuple[str, ...]] = {
    "hips": ("upper_leg.L", "upper_leg.R", "chest", "upper_chest", "neck", "head", "spine"),
}

#: Joints whose length ratio scales the root's path: hip → knee → ankle, both sides averaged.
LEG_CHAIN = ("upper_leg", "lower_leg", "foot")

#: The core a map must have to drive a body (detection weighs these most).
BODY_CORE = ("hips", "spine", "head", "upper_arm.L", "lower_arm.L", "hand.L", "upper_arm.R", "lower_arm.R", "hand.R",
             "upper_leg.L", "lower_leg.L", "foot.L", "upper_leg.R", "lower_leg.R", "foot.R")


def mirror_name(name: str) -> str:
    """``hand.L`` ↔ ``hand.R``; centre joints unchanged."""
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


def mapped_parent(name: str, mapped: set[str] | frozenset[str]) -> str | None:
    """The nearest canonical ancestor of ``name`` that is in ``mapped`` (None at the top)."""
    parent = PARENT[name]
    while parent is not None and parent not in mapped:
        parent = PARENT[parent]
    return parent


def aim_of(name: str, mapped: set[str] | frozenset[str]) -> str | None:
    """The first of ``name``'s aim joints that is in ``mapped``, or None (use the bone's own axis)."""
    for candidate in AIM[name]:
        if candidate in mapped:
            return candidate
    return None
