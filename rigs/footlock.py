"""Foot locking on the target rig (numpy only, no bpy): feet in contact with the ground stay where they landed.

Retargeting onto a rig with other proportions makes planted feet slide even when the source's do not (and the
source's may slide too). During each contact the target's ankle (the canonical ``foot`` head) is pinned to one
point — the median of where it would have been — and the leg reaches it by analytic two-bone IK:

    hip H, knee K, ankle A (current), pinned ankle A*, l1 = |K − H|, l2 = |A − K|,
    d = |A* − H| clamped to [|l1 − l2|, l1 + l2] (a point out of reach straightens the leg towards it),
    u = (A* − H)/d, cos α = (l1² + d² − l2²) / (2 l1 d)                  (law of cosines at the hip),
    pole p = the part of (K − H) perpendicular to u, normalised             (the knee keeps pointing where it did),
    K* = H + l1 (cos α · u + sin α · p),
    thigh: Q1 = rot(K − H → K* − H);  shin: Q2 = rot(Q1 (A − K) → A* − K*);  foot keeps its world rotation.

The pin fades in and out over a few frames around each contact so the leg never pops. Contacts come from the Take
when it has them, else from the source's feet: slow (speed under ``speed_mps``) and low (within ``height_m`` of
the lowest that foot gets in the clip).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import retarget
from .rotations import rotation_between

SIDES = ("L", "R")


def contact_segments(contact: np.ndarray, min_frames: int = 3, max_gap: int = 1) -> list[tuple[int, int]]:
    """[start, end) frame ranges where ``contact`` (T,) holds, gaps up to ``max_gap`` frames bridged, segments
    shorter than ``min_frames`` dropped."""
    c = np.asarray(contact, dtype=bool).copy()
    idx = np.flatnonzero(c)
    for a, b in zip(idx[:-1], idx[1:]):  # bridge short gaps
        if 1 < b - a <= max_gap + 1:
            c[a:b] = True
    edges = np.diff(np.concatenate([[0], c.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_frames]


def estimate_contacts(plan: retarget.Plan, source_armature: np.ndarray, fps: float, speed_mps: float = 0.35,
                      height_m: float = 0.06) -> np.ndarray:
    """(T, 2) contact flags [left, right] from the source's feet (toes head if mapped, else the ankle)."""
    _, heads = retarget.source_world(plan, source_armature)  # (T, J, 3) world, Z up
    by_joint = {p.joint: p.source for p in plan.pairs}
    out = np.zeros((heads.shape[0], 2), dtype=bool)
    for k, s in enumerate(SIDES):
        bone = by_joint.get(f"toes.{s}", by_joint.get(f"foot.{s}"))
        if bone is None or heads.shape[0] < 2:
            continue
        p = heads[:, bone]
        speed = np.linalg.norm(np.gradient(p, axis=0), axis=1) * fps
        low = p[:, 2] < p[:, 2].min() + height_m
        out[:, k] = (speed < speed_mps) & low
    return out


def _weights(n: int, segments: list[tuple[int, int]], blend: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pin weight (0..1) and the segment each frame is pinned to (−1: none)."""
    w = np.zeros(n)
    owner = np.full(n, -1)
    for i, (a, b) in enumerate(segments):
        w[a:b] = 1.0
        owner[a:b] = i
        for k in range(1, blend + 1):
            ramp = 1.0 - k / (blend + 1)
            for f in (a - k, b - 1 + k):
                if 0 <= f < n and ramp > w[f]:
                    w[f], owner[f] = ramp, i
    return w, owner


def two_bone_ik(H: np.ndarray, K: np.ndarray, A: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (T, 3, 3) for the thigh (Q1) and, applied after it, the shin (Q2) that put the ankle on
    ``target`` with the knee in the plane of its current pole (see the module docstring)."""
    l1 = np.linalg.norm(K - H, axis=-1)
    l2 = np.linalg.norm(A - K, axis=-1)
    to = target - H
    d = np.clip(np.linalg.norm(to, axis=-1), np.abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    u = to / np.maximum(np.linalg.norm(to, axis=-1, keepdims=True), 1e-12)
    pole = (K - H) - np.sum((K - H) * u, axis=-1, keepdims=True) * u
    n = np.linalg.norm(pole, axis=-1, keepdims=True)
    pole = np.where(n > 1e-9, pole / np.maximum(n, 1e-12), np.cross(u, [1.0, 0.0, 0.0]))
    cos_a = np.clip((l1 ** 2 + d ** 2 - l2 ** 2) / (2 * l1 * d), -1.0, 1.0)
    K_new = H + l1[..., None] * (cos_a[..., None] * u + np.sqrt(1.0 - cos_a ** 2)[..., None] * pole)
    A_new = H + d[..., None] * u
    Q1 = rotation_between(K - H, K_new - H)
    Q2 = rotation_between(np.einsum("tij,tj->ti", Q1, A - K), A_new - K_new)
    return Q1, Q2


def lock_feet(result: retarget.Result, contacts: np.ndarray, blend_frames: int = 3,
              min_frames: int = 3) -> tuple[retarget.Result, dict[str, list[tuple[int, int]]]]:
    """The result with each foot pinned during its contacts (T, 2) [left, right]; also the segments used."""
    plan = result.plan
    arm = result.armature_matrices
    n = arm.shape[0]
    by_joint: Mapping[str, int] = {p.joint: p.target for p in plan.pairs}
    desired = {p.target: arm[:, p.target, :3, :3].copy() for p in plan.pairs}
    used: dict[str, list[tuple[int, int]]] = {}
    for k, s in enumerate(SIDES):
        bones = [by_joint.get(f"{j}.{s}") for j in ("upper_leg", "lower_leg", "foot")]
        if any(b is None for b in bones):
            continue
        thigh, shin, foot = (int(b) for b in bones)  # type: ignore[arg-type]
        segments = contact_segments(contacts[:, k], min_frames=min_frames)
        used[s] = segments
        if not segments:
            continue
        H, K, A = (arm[:, b, :3, 3] for b in (thigh, shin, foot))
        w, owner = _weights(n, segments, blend_frames)
        pins = np.array([np.median(A[a:b], axis=0) for a, b in segments])
        target = A.copy()
        on = owner >= 0
        target[on] = A[on] + w[on, None] * (pins[owner[on]] - A[on])
        Q1, Q2 = two_bone_ik(H, K, A, target)
        desired[thigh] = Q1 @ arm[:, thigh, :3, :3]
        desired[shin] = Q2 @ Q1 @ arm[:, shin, :3, :3]
        desired[foot] = arm[:, foot, :3, :3]  # the foot keeps its world orientation
    hips = plan.hips[1]
    hips_position = arm[:, hips, :3, 3] if hips >= 0 and plan.translation_bone >= 0 else None
    return retarget.pose(plan, desired, hips_position, n), used
