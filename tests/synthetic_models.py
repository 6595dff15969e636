"""Synthetic SMPL, SMPL-H, SMPL-X and MANO model files for the tests: the official files' structure (array names,
shapes, dtypes, the root's parent stored as 2³²−1, ``.npz`` and Python-2-style ``.pkl`` with a chumpy ``shapedirs``
and a scipy-sparse ``J_regressor``), filled with a human-like rig built from the Anny skeleton so that fits behave as
they would on the real files. The licensed files themselves are never needed or committed.

Geometry: every joint sits at the mean of its own ring of 8 vertices (so ``J_regressor @ v_template`` is the joint),
the other vertices are spread along the bones, skinned to their bone; each shape component moves every vertex of a
bone by one random offset (so the joints move linearly with the betas, as in SMPL); the vertices ``smplx`` picks
out as landmarks (nose, eyes, ears, toes, heels, fingertips) are placed where those are on the Anny body.
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np

SMPL_TO_TAKE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

from inference_server.body_models import FINGER_NUMBERS as _FINGERS  # noqa: E402
# smplx's landmark vertices → (where on Anny: "body:<MediaPipe pose index>" or "tip:<finger>", SMPL joint skinned to)
_LANDMARKS = {"nose": ("body:0", "head"), "leye": ("body:2", "head"), "reye": ("body:5", "head"),
              "lear": ("body:7", "head"), "rear": ("body:8", "head"), "LBigToe": ("body:31", "left_foot"),
              "RBigToe": ("body:32", "right_foot"), "LSmallToe": ("body:31", "left_foot"),
              "RSmallToe": ("body:32", "right_foot"), "LHeel": ("body:29", "left_ankle"),
              "RHeel": ("body:30", "right_ankle")}
COUNTS = {  # model → (vertices, faces, joints, shape components, pose-corrective columns)
    "smpl": (6890, 13776, 24, 10, 207), "smplh": (6890, 13776, 52, 16, 459), "smplx": (10475, 20908, 55, 20, 486),
    "mano": (778, 1538, 16, 10, 135)}


def _anny_points() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Anny's rest bone heads and fingertips/landmarks by name (Take world)."""
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.fit import _body_markers_rest

    skel = load_skeleton()
    heads = {n: skel.rest[j, :3, 3] for j, n in enumerate(skel.names)}
    heads["mid-hips"] = 0.5 * (heads["upperleg01.L"] + heads["upperleg01.R"]) + np.array([0.0, 0.0, 0.06])
    heads["head*"] = heads["head"] + np.array([0.0, -0.04, 0.0])
    marks = {f"body:{i}": p for i, p in enumerate(_body_markers_rest(skel))}
    for side, sfx in enumerate("LR"):
        for finger, k in _FINGERS.items():
            j = skel.index(f"finger{k}-3.{sfx}")
            marks[f"tip:{'lr'[side]}{finger}"] = skel.rest[j, :3, 3] + skel.rest[j, :3, 1] * skel.lengths[j]
    return heads, marks


def _joint_table(model: str, side: str = "right") -> tuple[list[str], list[str]]:
    """(SMPL-family joint names, the Anny point each sits on)."""
    from inference_server.body_models import _smpl_names, anny_point

    names = _smpl_names(model, side)
    # the synthetic jaw sits in front of the head joint (a real SMPL-X jaw is not at the head joint either)
    return names, [anny_point(n) + ("*" if n == "jaw" else "") for n in names]


def _parents(names: list[str], model: str) -> np.ndarray:
    tree = {"pelvis": None, "left_hip": "pelvis", "right_hip": "pelvis", "spine1": "pelvis", "left_knee": "left_hip",
            "right_knee": "right_hip", "spine2": "spine1", "left_ankle": "left_knee", "right_ankle": "right_knee",
            "spine3": "spine2", "left_foot": "left_ankle", "right_foot": "right_ankle", "neck": "spine3",
            "left_collar": "spine3", "right_collar": "spine3", "head": "neck", "left_shoulder": "left_collar",
            "right_shoulder": "right_collar", "left_elbow": "left_shoulder", "right_elbow": "right_shoulder",
            "left_wrist": "left_elbow", "right_wrist": "right_elbow", "left_hand": "left_wrist",
            "right_hand": "right_wrist", "jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head"}
    parents = []
    for name in names:
        if model == "mano" and name.endswith("_wrist"):      # MANO's root
            parent = None
        elif name in tree:
            parent = tree[name]
        else:
            s, rest = name.split("_", 1)
            seg = int(rest[-1])
            parent = f"{s}_wrist" if seg == 1 else f"{s}_{rest[:-1]}{seg - 1}"
        parents.append(-1 if parent is None else names.index(parent))
    return np.array(parents)


def build_arrays(model: str, side: str = "right", seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of a synthetic model file, in the model's own frame (Y up, facing +Z)."""
    from smplx.vertex_ids import vertex_ids

    rng = np.random.default_rng(seed)
    V, F, J, S, P = COUNTS[model]
    heads, marks = _anny_points()
    names, where = _joint_table(model, side)
    parents = _parents(names, model)
    joints = np.array([heads[w] for w in where]) @ SMPL_TO_TAKE         # Take → model frame (row vectors)
    if model == "mano":
        joints = joints - joints[0]
    hand = model == "mano"
    radius = np.where([("index" in n or "middle" in n or "ring" in n or "pinky" in n or "thumb" in n or hand)
                       for n in names], 0.007, 0.05)
    children = {j: [c for c in range(J) if parents[c] == j] for j in range(J)}

    v = np.zeros((V, 3))
    bone_of = np.zeros(V, dtype=int)
    # Rings: 8 vertices per joint, symmetric about it.
    ring = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4), np.zeros(8)], 1)
    reg = np.zeros((J, V))
    for j in range(J):
        idx = np.arange(8 * j, 8 * j + 8)
        v[idx] = joints[j] + ring * radius[j]
        bone_of[idx] = j
        reg[j, idx] = 1.0 / 8.0
    # The rest along the bones.
    for i in range(8 * J, V):
        j = i % J
        end = joints[children[j][0]] if children[j] else joints[j] + (joints[j] - joints[max(parents[j], 0)]) * 0.3
        u = rng.uniform(0.1, 0.9)
        v[i] = joints[j] + u * (end - joints[j]) + rng.normal(scale=radius[j] * 0.6, size=3)
        bone_of[i] = j
    # Landmark vertices where smplx looks for them.
    ids = vertex_ids["mano" if hand else ("smplx" if model == "smplx" else "smplh")]
    for key, vid in ids.items():
        if hand:
            v[vid] = marks[f"tip:{side[0]}{key}"] @ SMPL_TO_TAKE - (np.array(heads[where[0]]) @ SMPL_TO_TAKE)
            bone_of[vid] = names.index(f"{side}_{key}3")
        elif key in _LANDMARKS:
            point, bone = _LANDMARKS[key]
            v[vid] = marks[point] @ SMPL_TO_TAKE
            bone_of[vid] = names.index(bone)
        elif key[1:] in _FINGERS and model != "smpl":
            s = "left" if key[0] == "l" else "right"
            v[vid] = marks[f"tip:{key[0]}{key[1:]}"] @ SMPL_TO_TAKE
            bone_of[vid] = names.index(f"{s}_{key[1:]}3")
    weights = np.zeros((V, J))
    weights[np.arange(V), bone_of] = 0.8
    weights[np.arange(V), np.maximum(parents[bone_of], 0)] += 0.2
    ring_ids = np.arange(8 * J)
    weights[ring_ids] = 0.0
    weights[ring_ids, bone_of[ring_ids]] = 1.0
    # Shape: each component moves each bone's vertices (ring included) by one offset, ~1 cm per unit.
    bone_dirs = rng.normal(scale=0.01 if not hand else 0.002, size=(J, 3, S))
    shapedirs = bone_dirs[bone_of]
    posedirs = rng.normal(scale=1e-4, size=(V, 3, P))
    faces = rng.integers(0, V, size=(F, 3)).astype(np.uint32)
    kintree = np.stack([parents, np.arange(J)]).astype(np.int64)
    kintree[0, 0] = 2 ** 32 - 1
    out = dict(v_template=v, shapedirs=shapedirs, posedirs=posedirs, J_regressor=reg, weights=weights,
               kintree_table=kintree, f=faces, J=joints)
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    if hand:
        out.update(hands_components=comps, hands_mean=rng.normal(scale=0.1, size=45))
    elif model in ("smplh", "smplx"):
        out.update(hands_componentsl=comps, hands_componentsr=comps.copy(), hands_meanl=rng.normal(scale=0.1, size=45),
                   hands_meanr=rng.normal(scale=0.1, size=45))
    if model == "smplx":
        out.update(lmk_faces_idx=rng.integers(0, F, size=51).astype(np.int64), lmk_bary_coords=np.full((51, 3), 1 / 3),
                   dynamic_lmk_faces_idx=rng.integers(0, F, size=(79, 17)).astype(np.int64),
                   dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3))
    return out


class _ChumpyStandIn:
    """Pickles as ``chumpy.ch.Ch`` with chumpy's own state layout (the value under ``x``)."""

    def __init__(self, x: np.ndarray):
        self.__dict__.update(x=x, _dirty_vars=set(), _itr=None, _depends_on_deps={}, _make_dense=False,
                             _make_sparse=False)


def _write_pkl(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import scipy.sparse as sp

    module = types.ModuleType("chumpy.ch")
    _ChumpyStandIn.__module__, _ChumpyStandIn.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = _ChumpyStandIn  # type: ignore[attr-defined]
    had = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = module
    try:
        data: dict = dict(arrays)
        data["shapedirs"] = _ChumpyStandIn(arrays["shapedirs"])
        data["J_regressor"] = sp.csc_matrix(arrays["J_regressor"])
        data["bs_style"], data["bs_type"] = "lbs", "lrotmin"
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    finally:
        for k, m in had.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m


FILE_NAMES = {"smpl": "SMPL_NEUTRAL", "smplh": "SMPLH_NEUTRAL", "smplx": "SMPLX_NEUTRAL", "mano": "MANO_{S}"}


def write_model_file(folder: str | Path, model: str, fmt: str = "npz", side: str = "right", seed: int = 0) -> Path:
    """Write a synthetic model file as ``folder/<model>/<official name>.<fmt>``; returns its path."""
    arrays = build_arrays(model, side, seed)
    out_dir = Path(folder) / model
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (FILE_NAMES[model].format(S=side.upper()) + "." + fmt)
    if fmt == "npz":
        np.savez(path, **arrays)
    else:
        _write_pkl(path, arrays)
    return path
