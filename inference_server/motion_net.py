"""The learned motion network (WHAM-style, issue 11): a sequence of 2D body keypoints, normalised to the person's
box, → Anny body-bone rotations, the root's orientation and position in the camera, foot contacts, and the root's
world orientation and velocity. torch (CPU or GPU; nothing here touches a device by itself); no bpy.

Data: :mod:`.motion_data` (the window's arrays, their units and conventions); training: :mod:`.motion_train`;
inference from the ONNX export: :mod:`.motion_infer`.

Architecture (WHAM, Shin et al. CVPR 2024, §3, built from the paper's description; sizes in :class:`NetConfig`)
---------------------------------------------------------------------------------------------------------------
Per frame t the input is ``kp2d`` (33 × (x̂, ŷ, visibility), box-normalised), the box ``b̂ = (b_x, b_y, b_s)``, the
frame's detection mask, the focal length over the image's longer side ``f̂ = f / L`` and the camera's angular
velocity ω. They become one feature vector ``[kp2d, b_x, b_y, log b_s, log f̂, log f̂ − log b_s, mask, q̇, ḃ, ω]``:
``log f̂ − log b_s`` is the log of the depth a person of unit box size would be at (the network reads depth from
the box's scale and the focal length); ``q̇`` are the landmarks' image velocities (``q = b_xy + b_s k̂``, L units,
first differences × 30 /s, clamped to ±3, zero unless seen on both frames) and ``ḃ`` the box's (x, y, log s), so
that foot contacts and the root's velocity need not be differentiated out of positions by the GRU (a first version
without them learnt the pose but, in 1,200 steps, neither contacts nor velocity beyond their means).

1. **Motion encoder** — MLP then a unidirectional GRU (``enc_layers``, online: frame t sees frames ≤ t only) →
   motion context ``φ_t``; a linear head on it gives root-relative 3D body markers ``k3d_t`` (33 × 3, camera axes,
   metres; WHAM's intermediate 3D keypoints, supervised) that join the context: ``ψ_t = [φ_t, k3d_t]``.
2. **Trajectory decoder** — a GRU over ``[ψ_t, ω_t]`` (ω: the camera's angular velocity, rad/s, camera axes) →
   the root's world orientation ``Γ^w_t`` (6D) and its velocity in the heading frame ``v_t`` (m/s).
   The world here is yaw-canonical: turned about the vertical so that the first frame's camera looks along +Y
   (:func:`.motion_data_camera.level_yaw`), as in world.py; gravity is +Z.
3. **Motion decoder** — a GRU over ``[ψ_t, Γ^w_t, v_t]`` → body-bone local rotations (6D, every body bone but
   the root), the root's orientation in camera axes ``Γ^c_t`` (6D), the camera parameters ``(d_x, d_y, δ)`` and
   four foot-contact logits [heel.L, toe.L, heel.R, toe.R].

6D → rotation (Zhou et al. CVPR 2019): the two 3-vectors ``a₁, a₂`` become the first two columns by Gram–Schmidt,
the third is their cross product (:func:`rot6d_to_matrix`).

Root position in the camera (OpenCV axes) from the camera parameters, the box and the intrinsics: the root projects
at the box centre plus ``(d_x, d_y)`` box sides, and its depth is the focal length over the box side times a
metric box size ``S = box_size_m · exp(δ)``::

    z = (f̂ / b_s) · S,      x = z · (b_x + b_s d_x − p_x) / f̂,      y = z · (b_y + b_s d_y − p_y) / f̂

with ``p = ((c_x − W/2) / L, (c_y − H/2) / L)`` the principal point's offset from the image centre (0 in the
training data; the intrinsics input carries it so that the geometry, not the learned layers, handles it).

Forward kinematics of the body in torch (:class:`BodyFK`) follows rigs/fk.py: ``W_root = [G · Rest_root | p]``,
``W_j = W_p · (Rest_p⁻¹ Rest_j) · [L_j | 0]``. Only the body bones and the bones Anny's body markers ride on are
posed; every other bone stays at rest, so it folds into its child's offset (exact, since its rotation is I).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from .motion_data_camera import intrinsics_features  # noqa: F401  (re-exported: the network's input)

N_LANDMARKS = 33
N_CONTACTS = 4
ONNX_INPUTS = ("kp2d", "box", "cam_angvel", "mask", "cam_intrinsics")
ONNX_OUTPUTS = ("pose_rotmat", "root_cam_rotmat", "root_world_rotmat", "root_vel", "root_cam_pos", "contact",
                "kp3d")
# The export streams: its inputs carry one lead frame before the T frames (the frame before them, or the first frame
# itself at a clip's start) and the three GRUs' states (zeros at a clip's start); its outputs, the T frames' and the
# states after them — so a clip runs a window at a time with the same result as all at once (MotionNet.forward).
STATE_INPUTS = ("h_enc", "h_traj", "h_dec")
STATE_OUTPUTS = ("h_enc_out", "h_traj_out", "h_dec_out")


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Sizes of :class:`MotionNet` (the defaults: 1,628,279 parameters for 22 body bones)."""
    n_bones: int = 22              # body bones, root first (motion_data_mocap.body_bones)
    embed: int = 256               # input MLP width
    enc_hidden: int = 256          # motion encoder GRU
    enc_layers: int = 2
    traj_hidden: int = 128         # trajectory decoder GRU
    dec_hidden: int = 256          # motion decoder GRU
    box_size_m: float = 2.0        # prior metric side of the person's box (1.2 × a 1.7 m person, standing)
    dropout: float = 0.1

    @classmethod
    def tiny(cls, n_bones: int = 22) -> "NetConfig":
        """A small network for smoke runs and tests."""
        return cls(n_bones=n_bones, embed=48, enc_hidden=48, enc_layers=1, traj_hidden=32, dec_hidden=48,
                   dropout=0.0)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# ---------------------------------------------------------------------------------------------------------------
# Rotations


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) → (..., 3, 3) rotation matrices (module docstring); columns b₁, b₂, b₃ = b₁ × b₂."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = a1 / torch.clamp(torch.linalg.vector_norm(a1, dim=-1, keepdim=True), min=1e-8)
    a2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = a2 / torch.clamp(torch.linalg.vector_norm(a2, dim=-1, keepdim=True), min=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) → (..., 6): the first two columns (the inverse of :func:`rot6d_to_matrix` on rotations)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def aa_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues in torch: (..., 3) axis-angle → (..., 3, 3) (rigs.rotations.aa_to_matrix)."""
    theta = torch.linalg.vector_norm(aa, dim=-1, keepdim=True)                    # (..., 1)
    k = aa / torch.clamp(theta, min=1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = torch.zeros_like(kx)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).reshape(aa.shape[:-1] + (3, 3))
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + s * K + (1.0 - c) * (K @ K)


# ---------------------------------------------------------------------------------------------------------------
# Camera geometry


def root_camera_position(cam: torch.Tensor, box: torch.Tensor, cam_intrinsics: torch.Tensor,
                         box_size_m: float) -> torch.Tensor:
    """Camera parameters (..., 3) ``(d_x, d_y, δ)``, box (..., 3) ``b̂``, intrinsics (..., 3) ``(f̂, p_x, p_y)`` →
    the root's camera-space position (..., 3), metres (module docstring)."""
    f = torch.clamp(cam_intrinsics[..., 0], min=1e-3)
    s = torch.clamp(box[..., 2], min=1e-3)
    z = f / s * box_size_m * torch.exp(torch.clamp(cam[..., 2], -3.0, 3.0))
    x = z * (box[..., 0] + s * cam[..., 0] - cam_intrinsics[..., 1]) / f
    y = z * (box[..., 1] + s * cam[..., 1] - cam_intrinsics[..., 2]) / f
    return torch.stack([x, y, z], dim=-1)


def project(points_cam: torch.Tensor, K: torch.Tensor, min_depth: float = 0.1) -> torch.Tensor:
    """(N, T, P, 3) camera points, K (N, 3, 3) → (N, T, P, 2) pixels (depth clamped to ``min_depth``)."""
    z = torch.clamp(points_cam[..., 2:3], min=min_depth)
    xy = points_cam[..., :2] / z
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)[:, None, None]
    c = K[:, :2, 2][:, None, None]
    return xy * f + c


# ---------------------------------------------------------------------------------------------------------------
# Network


def _gru(n_in: int, n_hidden: int, layers: int = 1, dropout: float = 0.0) -> nn.GRU:
    return nn.GRU(n_in, n_hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)


def _head(n_in: int, n_out: int, bias: np.ndarray | None = None, scale: float = 0.01) -> nn.Linear:
    """A linear output head whose initial output is ``bias`` (plus a little): rotations start at identity."""
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.mul_(scale / max(float(lin.weight.abs().max()), 1e-12) * 3.0)
        lin.bias.copy_(torch.as_tensor(bias if bias is not None else np.zeros(n_out), dtype=torch.float32))
    return lin


IDENTITY_6D = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
N_FEATURES = N_LANDMARKS * 3 + 6 + N_LANDMARKS * 2 + 3 + 3
RATE = 30.0            # frame differences × this: per second at the training data's frame rate
MAX_RATE = 3.0         # ... clamped (a detector's label swap or a lost box is not motion)


class MotionNet(nn.Module):
    """The WHAM-style network (module docstring).

    ``forward(kp2d, box, cam_angvel, mask, cam_intrinsics)`` with N sequences of T frames:

    ==================  =================  ===============================================================
    kp2d                (N, T, 33, 3)      box-normalised keypoints (x̂, ŷ) and visibility (0/1); 0 where unseen
    box                 (N, T, 3)          b̂ = ((c_x − W/2)/L, (c_y − H/2)/L, s/L)
    cam_angvel          (N, T, 3)          camera angular velocity, rad/s, camera axes
    mask                (N, T)             1.0 where the frame has a detection, else 0.0 (float)
    cam_intrinsics      (N, T, 3)          (f/L, p_x, p_y) (:func:`intrinsics_features`)
    ==================  =================  ===============================================================

    returns a dict of tensors:

    ==================  =================  ===============================================================
    pose_rotmat         (N, T, B−1, 3, 3)  local rotations of body bones 1..B−1 (bone rest axes, Take convention)
    root_cam_rotmat     (N, T, 3, 3)       the body's rotation relative to its rest, in camera axes (R_w2c · G)
    root_world_rotmat   (N, T, 3, 3)       the same in the yaw-canonical world (G), Z up
    root_vel            (N, T, 3)          root velocity, m/s, heading frame (motion_data_augment)
    root_cam_pos        (N, T, 3)          root position in camera axes, m
    cam                 (N, T, 3)          (d_x, d_y, δ) behind root_cam_pos
    contact_logit       (N, T, 4)          foot contacts [heel.L, toe.L, heel.R, toe.R], logits
    contact             (N, T, 4)          ... as probabilities
    kp3d                (N, T, 33, 3)      root-relative body markers, camera axes, m (intermediate)
    ==================  =================  ===============================================================
    """

    def __init__(self, config: NetConfig = NetConfig()):
        super().__init__()
        c = self.config = config
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, c.embed), nn.ReLU(), nn.Linear(c.embed, c.embed),
                                   nn.ReLU())
        self.encoder = _gru(c.embed, c.enc_hidden, c.enc_layers, c.dropout)
        self.kp3d_head = _head(c.enc_hidden, N_LANDMARKS * 3, scale=0.1)
        n_ctx = c.enc_hidden + N_LANDMARKS * 3
        self.drop = nn.Dropout(c.dropout)
        self.traj = _gru(n_ctx + 3, c.traj_hidden)
        self.traj_head = _head(c.traj_hidden, 6 + 3, np.concatenate([IDENTITY_6D, np.zeros(3)]))
        self.decoder = _gru(n_ctx + 9, c.dec_hidden)
        n_pose = (c.n_bones - 1) * 6
        self.pose_head = _head(c.dec_hidden, n_pose + 6, np.tile(IDENTITY_6D, c.n_bones))
        self.cam_head = _head(c.dec_hidden, 3)
        self.contact_head = _head(c.dec_hidden, N_CONTACTS, scale=0.1)

    @staticmethod
    def features(kp2d: torch.Tensor, box: torch.Tensor, mask: torch.Tensor, cam_intrinsics: torch.Tensor,
                 cam_angvel: torch.Tensor) -> torch.Tensor:
        """(N, T, 177) per-frame input features (module docstring)."""
        n, t = kp2d.shape[0], kp2d.shape[1]
        log_s = torch.log(torch.clamp(box[..., 2:3], min=1e-3))
        log_f = torch.log(torch.clamp(cam_intrinsics[..., 0:1], min=1e-3))
        vis = kp2d[..., 2]                                                              # (N, T, 33)
        image = box[..., None, :2] + box[..., None, 2:3] * kp2d[..., :2]               # (N, T, 33, 2), L units
        bx = torch.cat([box[..., :2], log_s], dim=-1)

        def rate(x: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
            prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
            seen_prev = torch.cat([seen[:, :1], seen[:, :-1]], dim=1)
            return torch.clamp((x - prev) * RATE, -MAX_RATE, MAX_RATE) * (seen * seen_prev)[..., None]

        return torch.cat([kp2d.reshape(n, t, N_LANDMARKS * 3), bx, log_f, log_f - log_s, mask[..., None],
                          rate(image, vis).reshape(n, t, N_LANDMARKS * 2), rate(bx, mask), cam_angvel], dim=-1)

    def state_shapes(self, n: int) -> tuple[tuple[int, int, int], ...]:
        """The shapes of the three GRUs' states (encoder, trajectory, decoder) for ``n`` sequences."""
        c = self.config
        return (c.enc_layers, n, c.enc_hidden), (1, n, c.traj_hidden), (1, n, c.dec_hidden)

    def forward(self, kp2d: torch.Tensor, box: torch.Tensor, cam_angvel: torch.Tensor, mask: torch.Tensor,
                cam_intrinsics: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None,
                lead: bool = False) -> dict[str, torch.Tensor]:
        """The outputs (class docstring). ``lead``: the inputs' first frame is the one before the sequence (its
        features give the first frame's rates, then it is dropped); ``state``: the GRUs' states to start from
        (:meth:`state_shapes`; zeros when None). The states after the last frame are ``out["state"]``."""
        c = self.config
        x = self.embed(self.features(kp2d, box, mask, cam_intrinsics, cam_angvel))
        if lead:
            x, box, cam_angvel, cam_intrinsics = x[:, 1:], box[:, 1:], cam_angvel[:, 1:], cam_intrinsics[:, 1:]
        n, t = x.shape[0], x.shape[1]
        h0 = state if state is not None else (None, None, None)
        phi, s_enc = self.encoder(x, h0[0])                                               # (N, T, H)
        kp3d = self.kp3d_head(phi)                                                        # (N, T, 99)
        ctx = self.drop(torch.cat([phi, kp3d], dim=-1))
        h_traj, s_traj = self.traj(torch.cat([ctx, cam_angvel], dim=-1), h0[1])
        traj = self.traj_head(h_traj)                                                     # (N, T, 9)
        h_dec, s_dec = self.decoder(torch.cat([ctx, traj], dim=-1), h0[2])
        pose = self.pose_head(h_dec)                                                      # (N, T, 6B)
        cam = self.cam_head(h_dec)
        logit = self.contact_head(h_dec)
        pose_R = rot6d_to_matrix(pose.reshape(n, t, c.n_bones, 6))
        return {
            "pose_rotmat": pose_R[:, :, 1:],
            "root_cam_rotmat": pose_R[:, :, 0],
            "root_world_rotmat": rot6d_to_matrix(traj[..., :6]),
            "root_vel": traj[..., 6:9],
            "root_cam_pos": root_camera_position(cam, box, cam_intrinsics, c.box_size_m),
            "cam": cam,
            "contact_logit": logit,
            "contact": torch.sigmoid(logit),
            "kp3d": kp3d.reshape(n, t, N_LANDMARKS, 3),
            "state": (s_enc, s_traj, s_dec),
        }


class MotionNetExport(nn.Module):
    """The ONNX face of :class:`MotionNet`, streaming: the five input tensors with a lead frame (T + 1 frames,
    ``mask`` as float) and the GRUs' states (:data:`STATE_INPUTS`) → the T frames' outputs as a tuple in
    :data:`ONNX_OUTPUTS` order (``contact`` as probabilities), then the states after them (:data:`STATE_OUTPUTS`).
    No Python control flow on data; N and T dynamic."""

    def __init__(self, net: MotionNet):
        super().__init__()
        self.net = net

    def forward(self, kp2d: torch.Tensor, box: torch.Tensor, cam_angvel: torch.Tensor, mask: torch.Tensor,
                cam_intrinsics: torch.Tensor, h_enc: torch.Tensor, h_traj: torch.Tensor, h_dec: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        out = self.net(kp2d, box, cam_angvel, mask, cam_intrinsics, state=(h_enc, h_traj, h_dec), lead=True)
        return tuple(out[k] for k in ONNX_OUTPUTS) + tuple(out["state"])


def export_onnx(net: MotionNet, path, metadata: dict[str, str] | None = None, frames: int = 16) -> None:
    """Write ``net`` (in eval mode) to ONNX at ``path`` (opset 17, TorchScript exporter as elsewhere in the
    project), batch and time axes dynamic; ``metadata`` goes into the model's metadata_props."""
    import warnings

    was_training = net.training
    net.eval()
    model = MotionNetExport(net)
    g = torch.Generator().manual_seed(0)
    t = frames + 1                                                                        # the lead frame
    args = (torch.rand(1, t, N_LANDMARKS, 3, generator=g) - 0.5, torch.rand(1, t, 3, generator=g) * 0.5,
            torch.zeros(1, t, 3), torch.ones(1, t), torch.full((1, t, 3), 0.8),
            *(0.1 * torch.randn(shape, generator=g) for shape in net.state_shapes(1)))
    axes = {name: {0: "batch", 1: "time"} for name in ONNX_INPUTS + ONNX_OUTPUTS}
    axes.update({name: {1: "batch"} for name in STATE_INPUTS + STATE_OUTPUTS})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notes and GRU batch-size hints
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17,
                          input_names=list(ONNX_INPUTS + STATE_INPUTS), output_names=list(ONNX_OUTPUTS + STATE_OUTPUTS),
                          dynamic_axes=axes)
    if metadata:
        import onnx

        proto = onnx.load(str(path))
        for k, v in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(path))
    net.train(was_training)


def half_weights(path, min_elements: int = 1024) -> None:
    """Store the ONNX file's large float32 weights as float16, each cast back to float32 by a ``Cast`` node in the
    graph (ONNX Runtime folds those at load): the file halves (the shipped network, 6.5 → 3.3 MB), the arithmetic
    stays float32; the weights are rounded to float16's 11 significant bits."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__f16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__to_f32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


# ---------------------------------------------------------------------------------------------------------------
# Forward kinematics of the body (torch)


class BodyFK(nn.Module):
    """Anny's body posed in torch: the body bones' rotations → the body markers (MediaPipe layout) and bone heads.

    Built from a skeleton's arrays: ``rest`` (J, 4, 4), ``parents`` (J,), ``body_bones`` (B,) (root first),
    ``marker_bone`` (33,) (−1: none) and ``marker_local`` (33, 3) (offset in the bone's rest frame). Bones that
    are neither body bones nor carry a marker stay at rest and fold into their descendants' offsets."""

    off_R: torch.Tensor            # (K, 3, 3) rest offsets to the nearest posed ancestor (K posed bones)
    off_t: torch.Tensor            # (K, 3)
    marker_local: torch.Tensor     # (M, 3) markers in their bone's rest frame
    present: torch.Tensor          # (33,) bool

    def __init__(self, rest: np.ndarray, parents: np.ndarray, body_bones: np.ndarray, marker_bone: np.ndarray,
                 marker_local: np.ndarray):
        super().__init__()
        from rigs.fk import rest_offsets

        rest = np.asarray(rest, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.int64)
        body = [int(b) for b in body_bones]
        present = np.asarray(marker_bone) >= 0
        needed = sorted(set(body) | {int(b) for b in np.asarray(marker_bone)[present]})
        if needed[0] != body[0] or parents[body[0]] >= 0:
            raise ValueError("the first body bone must be the skeleton's root")
        pos = {j: k for k, j in enumerate(needed)}
        red_parent = []
        for j in needed:
            p = int(parents[j])
            while p >= 0 and p not in pos:
                p = int(parents[p])
            red_parent.append(pos[p] if p >= 0 else -1)
        # Offsets to the nearest needed ancestor: O = Rest_p⁻¹ Rest_j (intermediate bones at rest compose exactly).
        offs = np.stack([rest[j] if red_parent[k] < 0 else
                         rest_offsets(rest[[needed[red_parent[k]], j]], np.array([-1, 0]))[1]
                         for k, j in enumerate(needed)])
        self.parent = red_parent
        self.body_slot = [pos[b] for b in body]               # body bone i → reduced index
        self.driven = {pos[b]: i for i, b in enumerate(body)}
        self.register_buffer("off_R", torch.tensor(offs[:, :3, :3], dtype=torch.float32))
        self.register_buffer("off_t", torch.tensor(offs[:, :3, 3], dtype=torch.float32))
        idx = np.nonzero(present)[0]
        self.marker_index = [int(i) for i in idx]
        self.marker_slot = [pos[int(np.asarray(marker_bone)[i])] for i in idx]
        self.register_buffer("marker_local", torch.tensor(np.asarray(marker_local)[idx], dtype=torch.float32))
        self.register_buffer("present", torch.tensor(present))

    @classmethod
    def of(cls, skel, body_bones: np.ndarray) -> "BodyFK":
        """From an :class:`~.anny_skeleton.Skeleton`."""
        return cls(skel.rest, skel.parents, body_bones, skel.body_marker_bone, skel.body_marker_local)

    def forward(self, root_R: torch.Tensor, pose_R: torch.Tensor, root_pos: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """root_R (..., 3, 3) the body's rotation relative to rest (G), pose_R (..., B−1, 3, 3) local rotations of
        body bones 1..B−1, root_pos (..., 3) → (markers (..., 33, 3), zero where Anny has none; body-bone heads
        (..., B, 3))."""
        rots: list[torch.Tensor] = []
        heads: list[torch.Tensor] = []
        for k, p in enumerate(self.parent):
            if p < 0:
                rots.append(root_R @ self.off_R[k])
                heads.append(root_pos)
                continue
            A = rots[p] @ self.off_R[k]
            i = self.driven.get(k)
            if i is not None:
                A = A @ pose_R[..., i - 1, :, :]
            heads.append(heads[p] + (rots[p] @ self.off_t[k][:, None])[..., 0])
            rots.append(A)
        R = torch.stack([rots[s] for s in self.marker_slot], dim=-3)                  # (..., M, 3, 3)
        h = torch.stack([heads[s] for s in self.marker_slot], dim=-2)                 # (..., M, 3)
        pts = h + (R @ self.marker_local[:, :, None])[..., 0]
        out = torch.zeros(pts.shape[:-2] + (N_LANDMARKS, 3), dtype=pts.dtype, device=pts.device)
        out[..., self.marker_index, :] = pts
        return out, torch.stack([heads[s] for s in self.body_slot], dim=-2)
