"""Body and hand models behind one interface: Anny (body, or one hand alone) and, from the user's files, MANO, SMPL,
SMPL-H and SMPL-X (through ``smplx``). No bpy.

Each model gives a :class:`ModelSkeleton` for a shape: the description the Take carries (joint names, parents, rest
matrices in the Take's world — metres, Z up, Blender bone frames with Y along the bone) together with the map
between the Take's rotations and the model's own pose convention:

* Anny ("bone-local"): a pose is each bone's rotation relative to its rest, in the bone's own rest axes — exactly the
  Take's ``local_rotations_aa`` (and Anny's ``pose_parameterization="local-bone"``).
* SMPL family and MANO ("parent-aligned"): ``full_pose`` axis-angles in axes aligned with the model's own frame
  (Y up, facing +Z), hand poses flat (no PCA, no mean hand added); ``transl`` as ``smplx`` takes it. A bone's
  rest axes in the model's frame are ``M_j``, so the Take's rotation is ``L_j = M_jᵀ θ_j M_j``.

Shapes: SMPL-family ``betas`` (10 used); Anny's six phenotype values in [0, 1] (gender, age, muscle, weight,
height, proportions).

``reference_joints`` poses a model with its own library (``smplx`` or ``anny``) — the ground truth the round-trip
tests hold the skeletons and :func:`fit_to_joints` to.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
import numpy as np

from .anny_skeleton import ANNY_PHENOTYPE
from .protocol import MODEL_MISSING, RpcError

# Model frame (Y up, facing +Z, subject's left +X) → the Take's world (Z up, facing −Y, left +X).
SMPL_TO_TAKE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
MODEL_TYPES = ("anny", "anny_hand", "mano", "smpl", "smplh", "smplx")
N_BETAS = 10
_DEBUG_JOINTS = bool(os.environ.get("REEL2RIG_DEBUG_JOINTS"))


@dataclasses.dataclass(frozen=True)
class ModelSkeleton:
    """One model's skeleton at one shape, in the Take's conventions, with its pose convention."""
    model: str                  # e.g. "anny", "anny_hand_left", "mano_right", "smplx"
    names: list[str]
    parents: np.ndarray         # (J,) parents first, root −1
    rest: np.ndarray            # (J,4,4) Take world, Y along the bone, translation = joint (head)
    lengths: np.ndarray         # (J,)
    frames: np.ndarray          # (J,3,3) M_j: bone j's rest axes in the model's own frame (identity for Anny)
    convention: str             # "bone-local" or "parent-aligned"

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_model_pose(self, local_aa: np.ndarray) -> np.ndarray:
        """Take rotations (…,J,3) → the model's pose (…,J,3)."""
        from rigs.rotations import aa_to_matrix, matrix_to_aa

        if self.convention == "bone-local":
            return np.array(local_aa, dtype=float)
        M = self.frames
        return matrix_to_aa(M @ aa_to_matrix(local_aa) @ np.swapaxes(M, -1, -2))

    def from_model_pose(self, model_aa: np.ndarray) -> np.ndarray:
        """The model's pose (…,J,3) → Take rotations (…,J,3)."""
        from rigs.rotations import aa_to_matrix, matrix_to_aa

        if self.convention == "bone-local":
            return np.array(model_aa, dtype=float)
        M = self.frames
        return matrix_to_aa(np.swapaxes(M, -1, -2) @ aa_to_matrix(model_aa) @ M)

    def joints(self, local_aa: np.ndarray, root_world: np.ndarray) -> np.ndarray:
        """Bone heads (T,J,3) in the Take's world for Take rotations (T,J,3) and root positions (T,3)."""
        from rigs.fk import bone_heads

        return bone_heads(self.rest, self.parents, local_aa, root_world)


def bone_frames(joints: np.ndarray, parents: np.ndarray, forward: np.ndarray = np.array([0.0, -1.0, 0.0])
                ) -> np.ndarray:
    """(J,3,3) rest axes for a skeleton given only joint positions (Take world): Y from the joint to its child (the
    child that continues straight on, else the mean of the children; a leaf continues its parent's direction), Z as
    near ``forward`` as Y allows (X when Y is along ``forward``), X = Y × Z."""
    n = len(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[int(p)].append(j)
    y_axes = np.zeros((n, 3))
    for j in range(n):
        if children[j]:
            dirs = np.array([joints[c] - joints[j] for c in children[j]])
            if len(dirs) == 1:
                d = dirs[0]
            else:
                p = parents[j]
                incoming = joints[j] - joints[p] if p >= 0 else np.array([0.0, 0.0, 1.0])
                units = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
                straight = int(np.argmax(units @ (incoming / max(np.linalg.norm(incoming), 1e-9))))
                d = dirs[straight] if units[straight] @ incoming > 0.9 * np.linalg.norm(incoming) else dirs.mean(0)
        else:
            p = int(parents[j])
            d = joints[j] - joints[p] if p >= 0 else np.array([0.0, 0.0, 1.0])
        if np.linalg.norm(d) < 1e-6:
            d = y_axes[int(parents[j])] if parents[j] >= 0 else np.array([0.0, 0.0, 1.0])
        y_axes[j] = d / np.linalg.norm(d)
    frames = np.zeros((n, 3, 3))
    for j in range(n):
        y = y_axes[j]
        ref = forward if abs(float(y @ forward)) < 0.9 else np.array([1.0, 0.0, 0.0])
        z = ref - (ref @ y) * y
        z /= np.linalg.norm(z)
        frames[j] = np.stack([np.cross(y, z), y, z], axis=1)
    return frames


def _lengths(joints: np.ndarray, parents: np.ndarray, frames: np.ndarray) -> np.ndarray:
    lengths = np.full(len(parents), 0.02)
    for j, p in enumerate(parents):
        if p >= 0:
            along = float((joints[j] - joints[p]) @ frames[p][:, 1])
            if along > lengths[p]:
                lengths[p] = along
    for j in range(len(parents)):      # leaves: as long as their parent's bone, at most 10 cm
        if not np.any(parents == j) and parents[j] >= 0:
            lengths[j] = min(max(lengths[int(parents[j])] * 0.8, 0.01), 0.10)
    return lengths


def _rest_matrices(frames: np.ndarray, joints: np.ndarray) -> np.ndarray:
    rest = np.tile(np.eye(4), (len(joints), 1, 1))
    rest[:, :3, :3] = frames
    rest[:, :3, 3] = joints
    return rest


class BodyModel:
    """The interface every model implements."""
    name: str = ""
    kind: str = "body"                 # "body" or "hand"
    shape_names: tuple[str, ...] = ()
    shape_bounds: tuple[float, float] | None = None
    shape_step = 1e-4                  # finite-difference step of the shape's Jacobian

    @property
    def default_shape(self) -> np.ndarray:
        return np.zeros(len(self.shape_names))

    def skeleton(self, shape: np.ndarray | None = None) -> ModelSkeleton:
        raise NotImplementedError

    def reference_joints(self, model_pose: np.ndarray, shape: np.ndarray, root_world: np.ndarray) -> np.ndarray:
        """Joints (T,J,3) in the Take's world posed by the model's own library: model pose (T,J,3), shape, and
        the root joint's world position (T,3)."""
        raise NotImplementedError

    def clip_shape(self, shape: np.ndarray) -> np.ndarray:
        if self.shape_bounds is None:
            return shape
        return np.clip(shape, *self.shape_bounds)


# Where each SMPL-family / MANO joint sits on the Anny skeleton: an Anny bone's head ("mid-hips": between the
# two hip joints). Used to carry an Anny fit over to another model (``transfer_from_anny``) and by the tests'
# synthetic model files.
ANNY_JOINT_POINTS = {
    "pelvis": "mid-hips", "left_hip": "upperleg01.L", "right_hip": "upperleg01.R", "spine1": "spine04",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R", "spine2": "spine03", "left_ankle": "foot.L",
    "right_ankle": "foot.R", "spine3": "spine01", "left_foot": "toe3-1.L", "right_foot": "toe3-1.R",
    "neck": "neck01", "left_collar": "clavicle.L", "right_collar": "clavicle.R", "head": "head",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R", "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R", "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "left_hand": "finger3-1.L", "right_hand": "finger3-1.R", "jaw": "head", "left_eye_smplhf": "eye.L",
    "right_eye_smplhf": "eye.R"}
FINGER_NUMBERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}   # Anny's finger1 … finger5


def anny_point(joint: str) -> str:
    """The Anny bone (or "mid-hips") a SMPL-family / MANO joint corresponds to."""
    if joint in ANNY_JOINT_POINTS:
        return ANNY_JOINT_POINTS[joint]
    side, rest = joint.split("_", 1)
    finger, segment = rest[:-1], int(rest[-1])
    return f"finger{FINGER_NUMBERS[finger]}-{segment}.{'L' if side == 'left' else 'R'}"


def anny_points(anny_names: list[str], heads: np.ndarray, joints: list[str]) -> np.ndarray:
    """Positions (…,N,3) of ``joints`` on posed Anny bone heads (…,J_anny,3)."""
    out = []
    for joint in joints:
        point = anny_point(joint)
        if point == "mid-hips":
            out.append(0.5 * (heads[..., anny_names.index("upperleg01.L"), :]
                              + heads[..., anny_names.index("upperleg01.R"), :]))
        else:
            out.append(heads[..., anny_names.index(point), :])
    return np.stack(out, axis=-2)


# --- the SMPL family and MANO (smplx) ----------------------------------------------------------------------------

def _smpl_names(model_type: str, side: str) -> list[str]:
    from smplx.joint_names import JOINT_NAMES, SMPLH_JOINT_NAMES

    if model_type == "smpl":
        return list(JOINT_NAMES[:22]) + ["left_hand", "right_hand"]
    if model_type == "smplh":
        return list(SMPLH_JOINT_NAMES[:52])
    if model_type == "smplx":
        return list(JOINT_NAMES[:55])
    fingers = [f"{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)]
    return [f"{side}_wrist"] + [f"{side}_{f}" for f in fingers]


class SmplModel(BodyModel):
    """SMPL, SMPL-H, SMPL-X or MANO from a user's model file (or the tests' structurally identical synthetic ones)."""

    shape_names = tuple(f"beta{k}" for k in range(N_BETAS))

    def __init__(self, model_type: str, path: str | Path, side: str = "right", gender: str = "neutral"):
        from .model_files import read_model_file

        self.model_type, self.side, self.gender = model_type, side, gender
        self.path = Path(path)
        self.data = read_model_file(self.path, model_type)
        self.name = f"mano_{side}" if model_type == "mano" else model_type
        self.kind = "hand" if model_type == "mano" else "body"
        d = self.data
        parents = np.asarray(d["kintree_table"][0]).astype(np.int64)
        parents[parents >= len(parents)] = -1          # the official files store the root's parent as 2³²−1
        parents[0] = -1
        if np.any(parents[1:] >= np.arange(1, len(parents))) or np.any(parents[1:] < 0):
            raise RpcError(MODEL_MISSING, f"{self.path}: the kinematic tree does not list parents before children",
                           fix="use the official model file, unchanged")
        self.parents = parents
        n_betas = min(N_BETAS, d["shapedirs"].shape[2])
        self.shape_names = tuple(f"beta{k}" for k in range(n_betas))
        Jreg = np.asarray(d["J_regressor"], dtype=np.float64)
        self.joints_template = Jreg @ np.asarray(d["v_template"], dtype=np.float64)                  # (J,3)
        self.joints_dirs = np.einsum("jv,vcs->jcs", Jreg, np.asarray(d["shapedirs"][:, :, :n_betas], np.float64))
        self.names = _smpl_names(model_type, side)
        self._smplx = None

    def rest_joints_model(self, shape: np.ndarray) -> np.ndarray:
        """(J,3) rest joints in the model's own frame for betas ``shape``."""
        return self.joints_template + self.joints_dirs @ np.asarray(shape, dtype=np.float64)

    def skeleton(self, shape: np.ndarray | None = None) -> ModelSkeleton:
        shape = self.default_shape if shape is None else shape
        joints = self.rest_joints_model(shape) @ SMPL_TO_TAKE.T
        frames = bone_frames(joints, self.parents)
        return ModelSkeleton(model=self.name, names=list(self.names), parents=self.parents.copy(),
                             rest=_rest_matrices(frames, joints), lengths=_lengths(joints, self.parents, frames),
                             frames=SMPL_TO_TAKE.T @ frames, convention="parent-aligned")

    def transl(self, root_world: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """smplx's ``transl`` (T,3) that puts the root joint at ``root_world`` (Take world)."""
        return np.asarray(root_world) @ SMPL_TO_TAKE - self.rest_joints_model(shape)[0]

    def smplx_module(self):
        """The ``smplx`` model built on this file's arrays (flat hands, no PCA)."""
        if self._smplx is None:
            import smplx
            from smplx.utils import Struct

            struct = Struct(**self.data)
            common = dict(data_struct=struct, num_betas=len(self.shape_names))
            hands = dict(use_pca=False, flat_hand_mean=True)
            if self.model_type == "smpl":
                self._smplx = smplx.SMPL("", **common)
            elif self.model_type == "smplh":
                self._smplx = smplx.SMPLH("", **common, **hands)
            elif self.model_type == "smplx":
                # smplx.SMPLX reads its file itself (np.load with allow_pickle=True): hand it a copy holding only
                # the arrays already read and checked here, so no pickled object from the user's file is loaded.
                import tempfile

                with tempfile.TemporaryDirectory() as tmp:
                    clean = Path(tmp) / "SMPLX_NEUTRAL.npz"
                    np.savez(clean, **{k: np.asarray(v) for k, v in self.data.items()})
                    self._smplx = smplx.SMPLX(str(clean), **hands, num_betas=len(self.shape_names),
                                              num_expression_coeffs=10, ext="npz")
            else:
                self._smplx = smplx.MANO("", **common, **hands, is_rhand=self.side == "right")
        return self._smplx

    def reference_joints(self, model_pose, shape, root_world):
        import torch

        model_pose = np.asarray(model_pose, dtype=np.float64)
        T = model_pose.shape[0]
        m = self.smplx_module()
        f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        betas = f32(np.broadcast_to(shape, (T, len(self.shape_names))))
        transl = f32(self.transl(root_world, shape))
        p = model_pose
        with torch.no_grad():
            if self.model_type == "smpl":
                out = m(betas=betas, global_orient=f32(p[:, 0]), body_pose=f32(p[:, 1:].reshape(T, -1)),
                        transl=transl)
            elif self.model_type == "smplh":
                out = m(betas=betas, global_orient=f32(p[:, 0]), body_pose=f32(p[:, 1:22].reshape(T, -1)),
                        left_hand_pose=f32(p[:, 22:37].reshape(T, -1)),
                        right_hand_pose=f32(p[:, 37:52].reshape(T, -1)), transl=transl)
            elif self.model_type == "smplx":
                out = m(betas=betas, global_orient=f32(p[:, 0]), body_pose=f32(p[:, 1:22].reshape(T, -1)),
                        jaw_pose=f32(p[:, 22]), leye_pose=f32(p[:, 23]), reye_pose=f32(p[:, 24]),
                        left_hand_pose=f32(p[:, 25:40].reshape(T, -1)),
                        right_hand_pose=f32(p[:, 40:55].reshape(T, -1)),
                        expression=torch.zeros(T, 10), transl=transl)
            else:
                out = m(betas=betas, global_orient=f32(p[:, 0]), hand_pose=f32(p[:, 1:].reshape(T, -1)),
                        transl=transl)
        joints = out.joints[:, :len(self.names)].double().numpy()
        return joints @ SMPL_TO_TAKE.T


# --- Anny ---------------------------------------------------------------------------------------------------------

def hand_bones(names: list[str], parents: np.ndarray, side: str) -> np.ndarray:
    """Indices of one hand's bones in an Anny skeleton: the wrist ("left"/"right") and every bone below it, parents
    first."""
    root = names.index("wrist." + ("L" if side == "left" else "R"))
    keep = [root]
    for j in range(root + 1, len(names)):
        if int(parents[j]) in keep:
            keep.append(j)
    return np.array(keep)


class AnnyModel(BodyModel):
    """The Anny body with fingers (``hand=None``), or one of its hands alone (``hand="left"|"right"``): the wrist
    and every bone below it."""

    shape_names = ANNY_PHENOTYPE
    shape_bounds = (0.0, 1.0)
    shape_step = 2e-3   # Anny builds its skeleton in float32: a smaller step differentiates rounding noise

    def __init__(self, hand: str | None = None):
        from .anny_skeleton import load_anny_model, load_skeleton

        self.hand = hand
        self.name = "anny" if hand is None else f"anny_hand_{hand}"
        self.kind = "body" if hand is None else "hand"
        self._model = load_anny_model()
        base = load_skeleton()
        all_names, all_parents = base.names, base.parents
        keep = list(range(len(all_names))) if hand is None else list(hand_bones(all_names, all_parents, hand))
        self._keep = np.array(keep)
        remap = {j: k for k, j in enumerate(keep)}
        self.names = [all_names[j] for j in keep]
        self.parents = np.array([remap.get(int(all_parents[j]), -1) for j in keep], dtype=np.int64)
        self._base_lengths = base.lengths[self._keep]
        self._rest_cache: dict[tuple, np.ndarray] = {}

    @property
    def default_shape(self) -> np.ndarray:
        return np.full(len(ANNY_PHENOTYPE), 0.5)

    def _anny_rest(self, shape: np.ndarray) -> np.ndarray:
        """(J_all,4,4) Anny's rest bone matrices for a phenotype (cached per value)."""
        import torch

        key = tuple(np.round(np.asarray(shape, dtype=float), 12))
        if key not in self._rest_cache:
            m = self._model
            pheno = {k: float(v) for k, v in zip(ANNY_PHENOTYPE, key)}
            with torch.no_grad():
                _, ph, lc, fa = m.get_tensor_inputs(None, pheno, None, None)
                out = m.get_rest_model(m._get_phenotype_blendshape_coefficients(ph, lc, fa))
            if len(self._rest_cache) > 64:
                self._rest_cache.clear()
            self._rest_cache[key] = out["rest_bone_poses"][0].double().numpy()
        return self._rest_cache[key]

    def skeleton(self, shape: np.ndarray | None = None) -> ModelSkeleton:
        shape = self.default_shape if shape is None else np.asarray(shape, dtype=float)
        rest = self._anny_rest(shape)[self._keep]
        return ModelSkeleton(model=self.name, names=list(self.names), parents=self.parents.copy(), rest=rest.copy(),
                             lengths=self._base_lengths.copy(), frames=np.tile(np.eye(3), (len(self.names), 1, 1)),
                             convention="bone-local")

    def reference_joints(self, model_pose, shape, root_world):
        import torch

        from rigs.fk import forward_kinematics

        # Anny's own "local-bone" deltas are relative to its reference bone orientations, which differ from the rest
        # (Blender) frames the Take uses; its "world-orient" parameterisation takes each bone's world orientation
        # and carries the heads down its own chain — the heads checked here.
        model_pose = np.asarray(model_pose, dtype=np.float64)
        T = model_pose.shape[0]
        full = self._anny_rest(np.asarray(shape, dtype=float))
        n_all = len(full)
        local_all = np.zeros((T, n_all, 3))
        local_all[:, self._keep] = model_pose
        root_all = np.tile(full[0, :3, 3], (T, 1))
        W = forward_kinematics(full, np.asarray(self._model.bone_parents), local_all, root_all)
        pheno = {k: float(v) for k, v in zip(ANNY_PHENOTYPE, shape)}
        with torch.no_grad():
            out = self._model(pose_parameters=torch.tensor(W), pose_parameterization="world-orient",
                              phenotype_kwargs=pheno)
        heads = out["bone_poses"][:, self._keep, :3, 3].double().numpy()
        return heads - heads[:, :1] + np.asarray(root_world)[:, None]


def load_model(model_type: str, model_dir: str | Path | None = None, side: str = "right",
               gender: str = "neutral") -> BodyModel:
    """A model by type: "anny", "anny_hand" (``side``), or "mano" (``side``), "smpl", "smplh", "smplx" from the
    user's folder. Raises MODEL_MISSING with the fix when a file is missing or wrong."""
    from .model_files import find_model_file

    if side not in ("left", "right"):
        raise RpcError(MODEL_MISSING, f"side must be 'left' or 'right', not {side!r}")
    if model_type == "anny":
        return AnnyModel()
    if model_type == "anny_hand":
        return AnnyModel(hand=side)
    if model_type in ("mano", "smpl", "smplh", "smplx"):
        path = find_model_file(model_type, model_dir, gender=gender, side=side)
        return SmplModel(model_type, path, side=side, gender=gender)
    raise RpcError(MODEL_MISSING, f"unknown model {model_type!r}", fix=f"use one of {', '.join(MODEL_TYPES)}")


# --- fitting a model to 3D joints ------------------------------------------------------------------------------

@dataclasses.dataclass
class JointFit:
    skeleton: ModelSkeleton
    shape: np.ndarray          # (S,)
    local_aa: np.ndarray       # (T,J,3) Take convention
    model_pose: np.ndarray     # (T,J,3) the model's convention
    root_world: np.ndarray     # (T,3)
    joints: np.ndarray         # (T,J,3) the fitted skeleton's joints
    error_mm: np.ndarray       # (T,) mean joint distance to the targets


def _solver(skel: ModelSkeleton):
    """A KinematicLM over every non-leaf bone of the skeleton, with every joint as an observed point."""
    import torch

    from .fit import TorchSkeleton
    from .kinematic_lm import KinematicLM

    n = len(skel.names)
    free = [j for j in range(n) if np.any(skel.parents == j)]
    return KinematicLM(TorchSkeleton(skel, torch.float64), skel.parents, free, np.arange(n),  # type: ignore[arg-type]
                       np.zeros((n, 3)), move_root=True, dtype=torch.float64, device="cpu")


def _swing_init(skel: ModelSkeleton, targets: np.ndarray) -> np.ndarray:
    """Take rotations (T,J,3) that point every bone at its children's targets, parents first: the bone turns by
    the rotation best mapping its posed child offsets onto the target ones (Kabsch; the smallest swing for one
    child), every frame at once."""
    from rigs.fk import forward_kinematics
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    from .fit import _kabsch, _swing

    T, n = targets.shape[:2]
    parents = skel.parents
    children = [np.nonzero(parents == j)[0] for j in range(n)]
    depth = np.zeros(n, dtype=int)
    for j in range(1, n):
        depth[j] = depth[parents[j]] + 1
    local = np.zeros((T, n, 3))
    for d in range(depth.max() + 1):
        W = forward_kinematics(skel.rest, parents, local, targets[:, 0])
        for j in np.nonzero(depth == d)[0]:
            kids = children[j]
            if len(kids) == 0:
                continue
            src = W[:, kids][..., :3, 3] - W[:, j, None, :3, 3]       # (T,K,3)
            dst = targets[:, kids] - targets[:, j, None]
            S = _swing(src[:, 0], dst[:, 0]) if len(kids) == 1 else _kabsch(src, dst)
            A = W[:, j, :3, :3]
            local[:, j] = matrix_to_aa(aa_to_matrix(local[:, j]) @ np.swapaxes(A, 1, 2) @ S @ A)
    return local


def _shape_from_lengths(model: BodyModel, targets: np.ndarray, iterations: int = 12) -> np.ndarray:
    """A starting shape from the targets' segment lengths (which no pose changes): Gauss–Newton from the best of the
    default shape and, for a bounded shape space such as Anny's piecewise-linear phenotype (whose skeleton has local
    minima from the middle value), the centres of its cells."""
    import itertools

    parents = model.skeleton().parents
    kids = np.arange(1, len(parents))
    observed = np.nanmedian(np.linalg.norm(targets[:, kids] - targets[:, parents[kids]], axis=-1), axis=0)

    def residual(s: np.ndarray) -> np.ndarray:
        joints = model.skeleton(s).rest[:, :3, 3]
        return np.linalg.norm(joints[kids] - joints[parents[kids]], axis=-1) - observed

    starts = [model.default_shape.astype(float)]
    if model.shape_bounds is not None:
        lo, hi = model.shape_bounds
        starts += [np.array(c) for c in itertools.product((lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo)),
                                                           repeat=len(model.shape_names))]
    shape = min(starts, key=lambda s: float(np.sum(residual(s) ** 2)))
    eps = model.shape_step
    for _ in range(iterations):
        r = residual(shape)
        J = np.stack([(residual(shape + eps * e) - residual(shape - eps * e)) / (2 * eps)
                      for e in np.eye(len(shape))], axis=1)
        step = np.linalg.solve(J.T @ J + 1e-6 * np.eye(len(shape)), -J.T @ r)
        new = model.clip_shape(shape + step)
        if np.sum(residual(new) ** 2) >= np.sum(r ** 2):
            break
        shape = new
    return shape


def fit_to_joints(model: BodyModel, targets: np.ndarray, iterations: int = 60, fit_shape: bool = True,
                  weights: np.ndarray | None = None, tolerance_mm: float = 1e-3,
                  shape: np.ndarray | None = None) -> JointFit:
    """Fit a model's pose (every frame), root position and one shape for the whole sequence to target joints
    (T,J,3) in the Take's world.

    Levenberg–Marquardt on all of it at once: per-frame pose Jacobians from the kinematic tree (kinematic_lm), the
    shape's by finite differences of the model's skeleton (pose held in the model's convention), and the shared
    shape eliminated by its Schur complement, so each step costs one small solve per frame plus one for the shape
    (alternating pose and shape instead zig-zags: ~15% per round on SMPL).
    """
    import roma
    import torch

    from rigs.rotations import aa_to_matrix, matrix_to_aa

    from .kinematic_lm import Pose

    targets = np.asarray(targets, dtype=np.float64)
    T, n = targets.shape[:2]
    w = np.sqrt(np.ones(n) if weights is None else np.asarray(weights, dtype=float))[None, :, None]
    if shape is None:
        shape = _shape_from_lengths(model, targets) if fit_shape else model.default_shape.astype(float)
    shape = np.asarray(shape, dtype=float)
    skel = model.skeleton(shape)
    local = _swing_init(skel, targets)
    root = targets[:, 0].copy()
    model_pose = skel.to_model_pose(local)

    def residual(s: np.ndarray, mp: np.ndarray, rt: np.ndarray) -> np.ndarray:
        sk = model.skeleton(s)
        return ((sk.joints(sk.from_model_pose(mp), rt) - targets) * w).reshape(T, -1)

    n_shape = len(shape) if fit_shape else 0
    solver_shape = None
    r = residual(shape, model_pose, root)
    cost = 0.5 * float((r ** 2).sum())
    mu = 1e-3
    for _ in range(iterations):
        if np.sqrt(2 * cost / (T * n)) * 1000 < tolerance_mm:
            break
        if solver_shape is None or not np.array_equal(solver_shape, shape):   # the rest changes with the shape only
            skel, solver_shape = model.skeleton(shape), shape.copy()
            lm = _solver(skel)
        pose = Pose(torch.tensor(aa_to_matrix(skel.from_model_pose(model_pose))), torch.tensor(root))
        posed = lm.pose_points(pose, jac=True)
        Jp = (posed.dpoints * torch.tensor(w)[..., None]).reshape(T, -1, posed.n_params)
        rt = torch.tensor(r)
        A = Jp.transpose(1, 2) @ Jp
        g = (Jp.transpose(1, 2) @ rt[..., None])[..., 0]
        diag = torch.diagonal(A, dim1=1, dim2=2)
        A_d = A + torch.diag_embed(mu * (diag + 1e-6))
        if n_shape:
            eps = model.shape_step
            Js = torch.tensor(np.stack([(residual(shape + eps * e, model_pose, root)
                                         - residual(shape - eps * e, model_pose, root)) / (2 * eps)
                                        for e in np.eye(n_shape)], axis=-1))           # (T,3N,S)
            B = Jp.transpose(1, 2) @ Js                                                  # (T,P,S)
            C = (Js.transpose(1, 2) @ Js).sum(0)
            h = (Js.transpose(1, 2) @ rt[..., None])[..., 0].sum(0)
            AinvB = torch.linalg.solve(A_d, B)
            Ainvg = torch.linalg.solve(A_d, g)
            S_mat = C + torch.diag(mu * (torch.diagonal(C) + 1e-6)) - (B.transpose(1, 2) @ AinvB).sum(0)
            rhs = h - (B.transpose(1, 2) @ Ainvg[..., None])[..., 0].sum(0)
            ds = -torch.linalg.solve(S_mat, rhs)
            dp = -(Ainvg + (AinvB @ ds)[..., None][..., 0])
        else:
            ds = torch.zeros(0, dtype=torch.float64)
            dp = -torch.linalg.solve(A_d, g)
        trial = lm.step(pose, dp)
        mp_new = skel.to_model_pose(roma.rotmat_to_rotvec(trial.local_R).numpy())
        root_new = trial.root_pos.numpy()
        shape_new = model.clip_shape(shape + ds.numpy()) if n_shape else shape
        r_new = residual(shape_new, mp_new, root_new)
        cost_new = 0.5 * float((r_new ** 2).sum())
        if _DEBUG_JOINTS:
            print(f"cost {cost:.3e} -> {cost_new:.3e} mu {mu:.1e} ds {np.abs(ds.numpy()).max() if n_shape else 0:.3g}")
        if cost_new < cost:
            shape, model_pose, root, r, cost = shape_new, mp_new, root_new, r_new, cost_new
            mu = max(mu / 3.0, 1e-9)
        else:
            mu = min(mu * 4.0, 1e6)
    skel = model.skeleton(shape)
    local = skel.from_model_pose(model_pose)
    joints = skel.joints(local, root)
    err = np.linalg.norm(joints - targets, axis=-1).mean(-1) * 1000.0
    return JointFit(skeleton=skel, shape=shape, local_aa=local, model_pose=model_pose, root_world=root,
                    joints=joints, error_mm=err)


def transfer_from_anny(model: BodyModel, anny_names: list[str], anny_heads: np.ndarray, window: int = 400,
                       shape_frames: int = 120, iterations: int = 25) -> JointFit:
    """Carry a fitted Anny motion (bone heads (T,J_anny,3), Take world) over to another model: its joints are
    fitted to the corresponding Anny points (``ANNY_JOINT_POINTS``) — one shape from up to ``shape_frames`` frames
    spread over the clip, then the pose window by window, each window's result written into whole-clip arrays made
    with ``scratch.empty`` (on disk for a long clip: memory bounded in T)."""
    from . import scratch

    skel = model.skeleton()
    T = len(anny_heads)
    pick = np.unique(np.linspace(0, T - 1, min(T, shape_frames)).round().astype(int))
    shape = fit_to_joints(model, anny_points(anny_names, np.asarray(anny_heads[pick]), skel.names),
                          iterations=iterations).shape
    out: dict[str, np.ndarray] = {}
    first = None
    for a, b in scratch.windows(T, window):
        part = fit_to_joints(model, anny_points(anny_names, np.asarray(anny_heads[a:b]), skel.names),
                             iterations=iterations, fit_shape=False, shape=shape)
        if first is None:
            first = part
        for name in ("local_aa", "model_pose", "root_world", "joints", "error_mm"):
            value = getattr(part, name)
            if name not in out:
                out[name] = scratch.empty((T, *value.shape[1:]), value.dtype)
            out[name][a:b] = value
    assert first is not None, "transfer_from_anny: no frames"
    return JointFit(skeleton=first.skeleton, shape=shape, local_aa=out["local_aa"], model_pose=out["model_pose"],
                    root_world=out["root_world"], joints=out["joints"], error_mm=out["error_mm"])


def random_pose(n_frames: int, skel: ModelSkeleton, scale: float = 0.35, seed: int = 0) -> np.ndarray:
    """Random model-convention poses (T,J,3) for tests and benchmarks: every joint turned by up to ``scale`` rad per
    axis, the root by up to π."""
    rng = np.random.default_rng(seed)
    pose = rng.uniform(-scale, scale, size=(n_frames, len(skel.names), 3))
    pose[:, 0] = rng.uniform(-np.pi / 2, np.pi / 2, size=(n_frames, 3))
    return pose

