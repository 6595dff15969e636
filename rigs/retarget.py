"""The retarget solver: a source motion onto another skeleton, bone by bone in world space (numpy only, no bpy).

Conventions (one place):

* A skeleton's ``rest`` matrices are in *armature* space (Blender's ``bone.matrix_local``: rotation columns are the
  bone's X, Y, Z axes, Y from head to tail; translation = head). The armature object maps armature space to the
  world by ``object_matrix`` (rotation R_obj, uniform scale σ, translation). World rotations below are
  R_obj · (armature rotation); positions are object_matrix · (armature position).
* Pose: Blender's ``matrix_basis`` per bone, i.e. ``W_j = W_p · (Rest_p⁻¹ Rest_j) · [L_j | loc_j]`` (see rigs/fk.py),
  where p is the bone's *effective* parent — its Blender parent unless the map says the rig's constraints make it
  follow another bone (Rigify's FK controls).
* Canonical joints (rigs/humanoid.py) pair a source bone with a target bone. Each pair has an *aim*: the direction
  from the joint's head to the head of the next mapped joint along the limb (shoulder → elbow, wrist → middle
  knuckle …), or the bone's own Y axis where there is none (head, toes, fingertips).

For a pair k, with source world rotation R_s(t) and rest R_s⁰, target rest (world) R_t⁰, and aims a (unit):

    C_k    = rot(a_t⁰ → a_s⁰)                       rest alignment: A-pose vs T-pose, different bone axes and rolls
    D_k(t) = R_s(t) · R_s⁰ᵀ                         the source bone's world-space change from its rest
    S_k(t) = rot(D_k(t) a_s⁰ → a_s(t))              swing that absorbs source bones between k and its aim that
                                                    the target does not have (identity when the aim is the own axis)
    G_k(t) = S_k(t) · D_k(t) · C_k · R_t⁰           the target bone's world rotation

so the target's aim direction is G_k a_t⁰ = S_k D_k a_s⁰ = a_s(t) on every frame (the bar: every mapped bone's
direction matches the source), and twist about the bone follows the source through D_k.

Joints without a usable aim: the hips take C_k from the best-fit rotation (Kabsch) of their directions to the thighs
and up the spine; head, toes and last phalanges take their mapped parent's C_k (their own Y axis may point anywhere
in an FBX import), and their "direction" is the source's bone axis carried into the target bone by C_k. Bones the map leaves out
keep their rest rotation relative to their parent.

Local rotations then follow from the target's own chain (parents first):  L_j = O_jᵀ · P_jᵀ · R_obj ᵀ G_j, where P_j is
the parent's armature-space rotation and O_j = Rest_pᵀ Rest_j (rotation parts).

Root path: the hips head goes where the source's goes, scaled about the world origin by the legs' length ratio
ρ = (hips' height above the balls of the feet at rest, target) / (same, source) (hip→knee→ankle where there are no
toes), both in world units:

    p_t(t) = ρ · p_s(t)

The Take's floor is z = 0, so a longer-legged character's hips ride higher by its extra leg length and its feet stay
on the floor; its steps lengthen by ρ too. (Moving by the source's displacement from *its rest* would
not do: a skeleton's rest sits wherever its model puts it — Anny's hips at z = 0.05 with the feet below the floor.)

and the translation bone's location is what puts the hips there: loc = R(W_p O_j)ᵀ · Δ(t) in its rest axes, with Δ
the world offset still needed once rotations are set (divided by σ to armature units).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from . import humanoid
from .rotations import normalize, rotation_between


class RetargetError(Exception):
    """Nothing sensible can be retargeted (no common joints, a broken skeleton); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """An armature at rest: names, parents (−1 for roots), rest (J, 4, 4) armature space, and its object matrix."""
    names: Sequence[str]
    parents: np.ndarray  # (J,) int
    rest: np.ndarray  # (J, 4, 4)
    object_matrix: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4))

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def decomposed_object(self) -> tuple[np.ndarray, float, np.ndarray]:
        """(R_obj, σ, t_obj) of the object matrix; raises for non-uniform scale or shear."""
        M = np.asarray(self.object_matrix, dtype=np.float64)
        A = M[:3, :3]
        scales = np.linalg.norm(A, axis=0)
        if np.any(scales < 1e-12) or np.ptp(scales) > 1e-4 * scales.max():
            raise RetargetError(f"the armature object has a non-uniform scale {np.round(scales, 5).tolist()}; "
                                "apply its scale (Ctrl+A › Scale) first")
        R = A / scales
        if abs(np.linalg.det(R) - 1.0) > 1e-4:
            raise RetargetError("the armature object is mirrored or sheared; apply its transform first")
        return R, float(scales.mean()), M[:3, 3].copy()

    def world_rest(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (J, 3, 3) and head positions (J, 3) at rest."""
        R_obj, sigma, t_obj = self.decomposed_object()
        rest = np.asarray(self.rest, dtype=np.float64)
        return R_obj @ rest[:, :3, :3], sigma * rest[:, :3, 3] @ R_obj.T + t_obj


def topological_order(parents: Sequence[int]) -> list[int]:
    """Bone indices with every parent before its children (raises on a cycle)."""
    parents = [int(p) for p in parents]
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)
    order: list[int] = []
    stack = list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    if len(order) != len(parents):
        raise RetargetError("the armature's bone hierarchy has a cycle or a parent outside the armature")
    return order


@dataclasses.dataclass(frozen=True)
class Pair:
    joint: str  # canonical
    source: int  # source bone index
    target: int  # target bone index
    aim: str | None  # canonical joint aimed at (None: the bone's own Y axis)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything about a (source, target, maps) combination that does not depend on the frame."""
    source: Skeleton
    target: Skeleton
    pairs: tuple[Pair, ...]
    effective_parents: np.ndarray  # (J_t,) the target's effective parent per bone
    order: tuple[int, ...]  # target bones, parents (effective) first
    align: np.ndarray  # (K, 3, 3) C_k per pair
    aim_local: np.ndarray  # (K, 3) each pair's target aim direction in the target bone's rest axes
    leg_ratio: float  # ρ
    translation_bone: int  # target bone whose location carries the root path (−1: none)
    hips: tuple[int, int]  # (source, target) hips bones, (−1, −1) without hips
    keyed: tuple[int, ...]  # target bones that get keys (mapped + unmapped bones between mapped ones)
    unmatched_source: tuple[str, ...]  # canonical joints the source has and the target lacks
    unmatched_target: tuple[str, ...]  # canonical joints the target has and the source lacks


@dataclasses.dataclass(frozen=True)
class Result:
    plan: Plan
    local_rotations: np.ndarray  # (T, J_t, 3, 3) matrix_basis rotation per target bone
    location: np.ndarray  # (T, 3) matrix_basis location of the translation bone (armature units)
    armature_matrices: np.ndarray  # (T, J_t, 4, 4) posed target bones in armature space, as Blender will pose them


def _aim_vectors(rot: np.ndarray, heads: np.ndarray, pairs: Sequence[Pair], side: str,
                 index: Mapping[str, int], aim_local: np.ndarray | None = None) -> np.ndarray:
    """Aim directions (…, K, 3) for world rotations (…, J, 3, 3) and heads (…, J, 3).

    Aim-less pairs use the source bone's Y axis; on the target side, that same anatomical direction carried into
    the target bone's axes by the rest alignment (``aim_local``), since a target bone's own Y axis may point
    anywhere (FBX imports without automatic bone orientation)."""
    out = []
    for k, pair in enumerate(pairs):
        bone = pair.source if side == "source" else pair.target
        if pair.aim is None:
            if side == "target" and aim_local is not None:
                out.append(np.einsum("...ij,j->...i", rot[..., bone, :, :], aim_local[k]))
            else:
                out.append(rot[..., bone, :, 1])
        else:
            out.append(heads[..., index[pair.aim], :] - heads[..., bone, :])
    return normalize(np.stack(out, axis=-2))


def leg_length(heads: np.ndarray, bones: Mapping[str, int]) -> float | None:
    """The legs' length at rest in world units: the hips' height above the balls of the feet (the ``toes`` heads,
    Z up) when both are mapped, else hip → knee → ankle averaged over the sides that have all three, else None."""
    toes = [bones[f"toes.{s}"] for s in humanoid.SIDES if f"toes.{s}" in bones]
    if "hips" in bones and toes:
        height = float(heads[bones["hips"], 2] - np.mean(heads[toes, 2]))
        if height > 1e-9:
            return height
    lengths = []
    for s in humanoid.SIDES:
        chain = [bones.get(f"{name}.{s}") for name in humanoid.LEG_CHAIN]
        if all(c is not None for c in chain):
            pts = heads[[int(c) for c in chain]]  # type: ignore[arg-type]
            lengths.append(float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1))))
    return float(np.mean(lengths)) if lengths and np.mean(lengths) > 1e-9 else None


def _mapped_between(descendant: str, ancestor: str, common: frozenset[str]) -> bool:
    """Whether a mapped canonical joint sits between the two (then the aim would move with that joint too)."""
    p = humanoid.PARENT[descendant]
    while p is not None and p != ancestor:
        if p in common:
            return True
        p = humanoid.PARENT[p]
    return False


def _usable_aim(joint: str, common: frozenset[str], s_bones: Mapping[str, int], t_bones: Mapping[str, int],
                s_heads: np.ndarray, t_heads: np.ndarray) -> str | None:
    """The first aim joint whose head is clearly apart from ``joint``'s head on both skeletons at rest.

    Heads that coincide (Anny's spine05 starts where its root does) give no direction, and an aim behind another
    mapped joint (the middle knuckle behind a mapped metacarpal) would not be the bone's own; such aims are skipped,
    and with none left the bone's own axis is used.
    """
    s_size = float(np.ptp(s_heads, axis=0).max()) or 1.0
    t_size = float(np.ptp(t_heads, axis=0).max()) or 1.0
    for candidate in humanoid.AIM[joint]:
        if candidate not in common or _mapped_between(candidate, joint, common):
            continue
        ds = np.linalg.norm(s_heads[s_bones[candidate]] - s_heads[s_bones[joint]])
        dt = np.linalg.norm(t_heads[t_bones[candidate]] - t_heads[t_bones[joint]])
        if ds > 1e-3 * s_size and dt > 1e-3 * t_size:
            return candidate
    return None


def kabsch(target_vectors: np.ndarray, source_vectors: np.ndarray) -> np.ndarray:
    """The rotation R (3, 3) minimising Σ |R t_i − s_i|² over paired unit vectors (N, 3) (Kabsch, via the SVD of
    H = Σ t_i s_iᵀ = U Σ Vᵀ: R = V diag(1, 1, det(V Uᵀ)) Uᵀ)."""
    H = np.asarray(target_vectors).T @ np.asarray(source_vectors)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


def _rest_alignment(pairs: Sequence[Pair], common: frozenset[str], s_bones: Mapping[str, int],
                    t_bones: Mapping[str, int], s_rot: np.ndarray, s_heads: np.ndarray, t_rot: np.ndarray,
                    t_heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C_k per pair and its target aim in the target bone's rest axes.

    * A pair with an aim: C_k = rot(a_t⁰ → a_s⁰).
    * The hips (no usable aim: the spine often starts where they do): the rotation that best carries the target's
      directions from the hips to the thighs and up the spine onto the source's (:func:`kabsch`).
    * Other aim-less joints (head, toes, last phalanges): the mapped parent's C, so the bone keeps its own rest
      relation to its parent (its Y axis may point anywhere); without a parent, rot(Y_t⁰ → Y_s⁰).
    """
    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(float(np.linalg.norm(v)), 1e-12)

    size = max(float(np.ptp(s_heads, axis=0).max()), 1e-9)
    t_size = max(float(np.ptp(t_heads, axis=0).max()), 1e-9)
    by_joint: dict[str, np.ndarray] = {}
    align, aim_local = [], []
    for pair in pairs:  # canonical order: parents first
        s_head, t_head = s_heads[pair.source], t_heads[pair.target]
        if pair.aim is not None:
            a_s = unit(s_heads[s_bones[pair.aim]] - s_head)
            a_t = unit(t_heads[t_bones[pair.aim]] - t_head)
            C = rotation_between(a_t, a_s)
        else:
            refs = [j for j in humanoid.REST_FRAME.get(pair.joint, ()) if j in common]
            sv, tv = [], []
            for j in refs:
                ds, dt = s_heads[s_bones[j]] - s_head, t_heads[t_bones[j]] - t_head
                if np.linalg.norm(ds) > 1e-3 * size and np.linalg.norm(dt) > 1e-3 * t_size:
                    sv.append(unit(ds))
                    tv.append(unit(dt))
            parent = humanoid.mapped_parent(pair.joint, common)
            if len(sv) >= 2 and np.linalg.matrix_rank(np.array(sv), tol=1e-3) >= 2:
                C = kabsch(np.array(tv), np.array(sv))
            elif parent is not None and parent in by_joint:
                C = by_joint[parent]
            else:
                C = rotation_between(t_rot[pair.target][:, 1], s_rot[pair.source][:, 1])
            a_t = C.T @ s_rot[pair.source][:, 1]  # the source's bone axis, as a target direction at rest
        by_joint[pair.joint] = C
        align.append(C)
        aim_local.append(t_rot[pair.target].T @ a_t)
    return np.array(align), np.array(aim_local)


def plan(source: Skeleton, source_bones: Mapping[str, str], target: Skeleton, target_bones: Mapping[str, str],
         translation_bone: str | None = None, effective_parents: Mapping[str, str] | None = None) -> Plan:
    """Pair the two skeletons through their maps (canonical joint → real bone name) and align their rests."""
    s_index, t_index = source.index(), target.index()
    s_bones = {j: s_index[b] for j, b in source_bones.items() if b in s_index}
    t_bones = {j: t_index[b] for j, b in target_bones.items() if b in t_index}
    common = frozenset(s_bones) & frozenset(t_bones)
    if not common:
        raise RetargetError("the source and the target share no mapped joints; check the target's bone map")
    joints = [j for j in humanoid.NAMES if j in common]
    s_rot, s_heads = source.world_rest()
    t_rot, t_heads = target.world_rest()
    pairs = tuple(Pair(j, s_bones[j], t_bones[j], _usable_aim(j, common, s_bones, t_bones, s_heads, t_heads))
                  for j in joints)

    eff = np.array(target.parents, dtype=int).copy()
    for bone, parent in (effective_parents or {}).items():
        if bone in t_index and parent in t_index:
            eff[t_index[bone]] = t_index[parent]
    order = tuple(topological_order(eff.tolist()))
    # Aims index the canonical joint → bone per side.
    align, aim_local = _rest_alignment(pairs, common, s_bones, t_bones, s_rot, s_heads, t_rot, t_heads)

    s_leg = leg_length(s_heads, {j: s_bones[j] for j in common})
    t_leg = leg_length(t_heads, {j: t_bones[j] for j in common})
    if s_leg and t_leg:
        ratio = t_leg / s_leg
    else:  # no legs on one side (a hand rig, an upper-body rig): scale by the hips-to-head height, else 1
        ratio = 1.0
        if "head" in common and "hips" in common:
            hs = np.linalg.norm(s_heads[s_bones["head"]] - s_heads[s_bones["hips"]])
            ht = np.linalg.norm(t_heads[t_bones["head"]] - t_heads[t_bones["hips"]])
            ratio = float(ht / hs) if hs > 1e-9 else 1.0

    hips = (s_bones["hips"], t_bones["hips"]) if "hips" in common else (-1, -1)
    trans = -1
    if translation_bone is not None and translation_bone in t_index:
        trans = t_index[translation_bone]
    elif hips[1] >= 0:
        trans = hips[1]

    mapped_t = {p.target for p in pairs}
    keyed = set(mapped_t)
    for mapped in mapped_t:  # unmapped bones between a mapped bone and its nearest mapped ancestor
        path: list[int] = []
        above = int(eff[mapped])
        while above >= 0 and above not in mapped_t:
            path.append(above)
            above = int(eff[above])
        if above >= 0:
            keyed.update(path)
    if trans >= 0:
        keyed.add(trans)
    return Plan(source=source, target=target, pairs=pairs, effective_parents=eff, order=order, align=align,
                aim_local=aim_local,
                leg_ratio=float(ratio), translation_bone=trans, hips=hips,
                keyed=tuple(sorted(keyed)),
                unmatched_source=tuple(j for j in humanoid.NAMES if j in s_bones and j not in t_bones),
                unmatched_target=tuple(j for j in humanoid.NAMES if j in t_bones and j not in s_bones))


def world_pose(skeleton: Skeleton, armature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posed armature matrices (T, J, 4, 4) of ``skeleton`` → world rotations (T, J, 3, 3) and heads (T, J, 3)."""
    R_obj, sigma, t_obj = skeleton.decomposed_object()
    M = np.asarray(armature, dtype=np.float64)
    return R_obj @ M[..., :3, :3], sigma * M[..., :3, 3] @ R_obj.T + t_obj


def source_world(plan_: Plan, source_armature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return world_pose(plan_.source, source_armature)


def solve(plan_: Plan, source_armature: np.ndarray) -> Result:
    """Target pose per frame from the source's posed armature matrices (T, J_s, 4, 4) (e.g. rigs.fk)."""
    s_rot, s_heads = source_world(plan_, source_armature)  # (T, J, 3, 3), (T, J, 3)
    n_frames = s_rot.shape[0]
    src = plan_.source
    s_rest_rot, s_rest_heads = src.world_rest()
    t_rest_rot, _ = plan_.target.world_rest()
    R_obj, sigma, t_obj = plan_.target.decomposed_object()

    s_index = {p.joint: p.source for p in plan_.pairs}
    src_idx = np.array([p.source for p in plan_.pairs])
    tgt_idx = np.array([p.target for p in plan_.pairs])
    a_rest = _aim_vectors(s_rest_rot, s_rest_heads, plan_.pairs, "source", s_index)  # (K, 3)
    a_now = _aim_vectors(s_rot, s_heads, plan_.pairs, "source", s_index)  # (T, K, 3)
    D = s_rot[:, src_idx] @ np.swapaxes(s_rest_rot[src_idx], -1, -2)  # (T, K, 3, 3)
    swung = np.einsum("tkij,kj->tki", D, a_rest)
    S = rotation_between(swung, a_now)  # (T, K, 3, 3)
    G = S @ D @ plan_.align[None] @ t_rest_rot[tgt_idx][None]  # (T, K, 3, 3) world
    desired = {int(t): np.swapaxes(R_obj, 0, 1) @ G[:, k] for k, t in enumerate(tgt_idx)}  # armature space

    wanted = None
    if plan_.translation_bone >= 0 and plan_.hips[0] >= 0:
        wanted_world = plan_.leg_ratio * s_heads[:, plan_.hips[0]]
        wanted = (wanted_world - t_obj) @ R_obj / sigma  # armature space (T, 3)
    return pose(plan_, desired, wanted, n_frames)


def pose(plan_: Plan, desired: Mapping[int, np.ndarray], hips_position: np.ndarray | None, n_frames: int) -> Result:
    """Pose the target: bones in ``desired`` (index → armature-space rotations (T, 3, 3)) get those rotations, the
    others keep their rest relation to their parent; the translation bone then puts the hips head on
    ``hips_position`` (T, 3) (armature space; None: no translation)."""
    rest = np.asarray(plan_.target.rest, dtype=np.float64)
    n_bones = rest.shape[0]
    eff = plan_.effective_parents
    local = np.broadcast_to(np.eye(3), (n_frames, n_bones, 3, 3)).copy()
    arm = np.zeros((n_frames, n_bones, 4, 4))
    arm[..., 3, 3] = 1.0
    location = np.zeros((n_frames, 3))
    for j in plan_.order:
        p = int(eff[j])
        if p < 0:
            offset = rest[j]
            parent = np.broadcast_to(np.eye(4), (n_frames, 4, 4))
        else:
            offset = np.linalg.inv(rest[p]) @ rest[j]
            parent = arm[:, p]
        base = parent @ offset  # (T, 4, 4): the bone at its rest relative to its (posed) parent
        if j in desired:
            # L_j = (P O_j)ᵀ A_j  (rotation parts; P O_j is the bone's frame before its own rotation)
            local[:, j] = np.swapaxes(base[:, :3, :3], -1, -2) @ desired[j]
        arm[:, j, :3, :3] = base[:, :3, :3] @ local[:, j]
        arm[:, j, :3, 3] = base[:, :3, 3]

    if hips_position is not None and plan_.translation_bone >= 0:
        t_hips = plan_.hips[1]
        delta = hips_position - arm[:, t_hips, :3, 3]  # what the translation bone must add
        tb = plan_.translation_bone
        p = int(eff[tb])
        offset = rest[tb] if p < 0 else np.linalg.inv(rest[p]) @ rest[tb]
        frame = offset[None, :3, :3] if p < 0 else arm[:, p, :3, :3] @ offset[:3, :3]
        location = np.einsum("tji,tj->ti", np.broadcast_to(frame, (n_frames, 3, 3)), delta)
        moved = _descendants(eff, tb)
        shifted = arm[:, moved]  # (T, M, 4, 4) copy (fancy indexing)
        shifted[..., :3, 3] += delta[:, None, :]
        arm[:, moved] = shifted
    return Result(plan=plan_, local_rotations=local, location=location, armature_matrices=arm)


def _descendants(parents: np.ndarray, bone: int) -> list[int]:
    """``bone`` and every bone below it (``parents`` lists each bone's parent, −1 for roots)."""
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(int(p), []).append(j)
    out, stack = [], [bone]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(children.get(j, []))
    return out


def aim_errors_deg(plan_: Plan, source_armature: np.ndarray, target_armature: np.ndarray) -> np.ndarray:
    """Angle (degrees) between each pair's source and target aim directions per frame (T, K).

    ``target_armature`` (T, J_t, 4, 4) may come from the solver or from Blender's evaluated pose (``pose_bone.matrix``)
    — the test of record uses Blender's.
    """
    s_rot, s_heads = source_world(plan_, source_armature)
    t_rot, t_heads = world_pose(plan_.target, target_armature)
    a_s = _aim_vectors(s_rot, s_heads, plan_.pairs, "source", {p.joint: p.source for p in plan_.pairs})
    a_t = _aim_vectors(t_rot, t_heads, plan_.pairs, "target", {p.joint: p.target for p in plan_.pairs},
                       plan_.aim_local)
    return np.degrees(np.arccos(np.clip(np.sum(a_s * a_t, axis=-1), -1.0, 1.0)))


def root_path_error(plan_: Plan, source_armature: np.ndarray, target_armature: np.ndarray) -> tuple[float, float]:
    """(worst error, scaled source path extent) in world units for the hips head, both relative to frame 0."""
    s_hips, t_hips = plan_.hips
    if s_hips < 0:
        return 0.0, 0.0
    _, s_heads = source_world(plan_, source_armature)
    _, t_heads = world_pose(plan_.target, target_armature)
    want = plan_.leg_ratio * (s_heads[:, s_hips] - s_heads[0, s_hips])
    got = t_heads[:, t_hips] - t_heads[0, t_hips]
    return float(np.max(np.linalg.norm(got - want, axis=1))), float(np.max(np.linalg.norm(want, axis=1)))
