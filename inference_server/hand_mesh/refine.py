"""Tang et al.'s alignment refinement (*Towards Accurate Alignment in Real-time 3D Hand-Mesh Reconstruction*,
ICCV 2021) on MobRecon's rough mesh, and the camera geometry and training losses it needs. torch; everything
differentiable; ``project`` and ``AlignmentRefiner`` export to ONNX (opset 17, TorchScript exporter).
``register_translation`` solves its 3×3 system by the adjugate (``solve3``), so it exports too (aten::linalg_solve
has no ONNX opset-17 export).

Camera (OpenCV): x right, y down, z forward, metres; K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels of the
128-px crop, pixel centres at integer coordinates (pixel (0, 0) covers [−0.5, 0.5]²).

* ``project``: u = (fx X + s Y)/Z + cx, v = fy Y/Z + cy, with Z clamped to ≥ 1e-4 (points behind the camera land
  somewhere finite instead of at infinity).
* ``register_translation``: the root-relative mesh's joints J = R·verts_rel (R the (21, V) joint regressor) placed at
  J + t project onto the 2D joints (u_j, v_j). Multiplying the projection through by the depth makes each joint two
  equations *linear* in t = (tx, ty, tz):

      fx (X + tx) + s (Y + ty) − (u − cx)(Z + tz) = 0
      fy (Y + ty)              − (v − cy)(Z + tz) = 0

  i.e. A t = b with rows [fx, s, −(u−cx)] · t = (u−cx) Z − fx X − s Y and [0, fy, −(v−cy)] · t = (v−cy) Z − fy Y.
  The weighted least-squares solution t = (Aᵀ W A)⁻¹ Aᵀ W b (W the joints' weights, each on both of its rows) is a
  3×3 solve per batch item (MobRecon's registration of its mesh to its 2D joints). Exact for noise-free joints; the
  residuals are depth-scaled pixel errors, so near and far joints are weighted by their depth (within a hand, ±10 %).
* ``AlignmentRefiner``: per vertex of the rough camera-frame mesh, project it into the crop and sample there
  (bilinear) the image, the encoder's shallow 64×64 features and its 16×16 joint maps: the pixel-aligned features of
  Tang et al.'s refinement. With a global feature (the latent averaged over space) and the vertex's position about the
  mesh's mean, a few residual depth-separable spiral convolutions give a per-vertex offset, added to the rough mesh.
* ``soft_silhouette``: SoftRas-style (Liu et al., ICCV 2019) soft rasterisation of the projected mesh's coverage, for
  the silhouette loss Tang et al. train the alignment with. Per pixel centre p and face f, d_f(p) is the signed
  distance to the projected triangle (positive inside whatever the winding): inside, the least of its three edges'
  signed line distances; outside, minus the distance to the nearest edge segment (the least of the signed line
  distances instead would put points beyond a sliver's sharp tip almost on the triangle: projected hands have many
  slivers, and their halos would swell the silhouette). D_f = sigmoid(d_f / σ); the silhouette is 1 − Π_f (1 − D_f).
* ``normal_loss`` / ``edge_length_loss``: MobRecon's (after I2L-MeshNet's) mesh regularisers against the ground truth.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .mobrecon import INPUT_SIZE, LATENT_SIZE, N_JOINTS, DSConv

MIN_DEPTH = 1e-4            # metres: project() clamps Z to at least this
POSITION_SCALE = 10.0       # the refiner sees vertex positions about the mesh's mean in decimetres (a hand is ~2 units)
FACE_CHUNK = 256            # soft_silhouette works through the faces this many at a time


# --- camera geometry ---------------------------------------------------------------------------------------------

def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pinhole projection: points (B, N, 3) camera frame, K (B, 3, 3) → pixels (B, N, 2) (x right, y down).

    Z is clamped to ≥ 1e-4 m. K's last row is taken to be [0, 0, 1] (skew K[0, 1] is honoured)."""
    z = points[..., 2:3].clamp(min=MIN_DEPTH)                          # (B, N, 1)
    xy = points[..., :2] / z                                           # (B, N, 2) normalised image coordinates
    fx, s, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]   # (B, 1) each
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    u = fx * xy[..., 0] + s * xy[..., 1] + cx                          # (B, N)
    v = fy * xy[..., 1] + cy
    return torch.stack([u, v], dim=-1)


def register_translation(verts_rel: torch.Tensor, joint_regressor: torch.Tensor, joints_px: torch.Tensor,
                         K: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The camera-frame translation t (B, 3) that puts the root-relative mesh where its joints project onto the 2D
    joints, in closed form (weighted linear least squares; see the module docstring).

    verts_rel (B, V, 3) metres; joint_regressor (J, V) (J = 21 for MobRecon; any J ≥ 2 works); joints_px (B, J, 2)
    pixels in K's image; K (B, 3, 3); weights (B, J) ≥ 0 (None: all 1), at least two joints' worth non-zero.
    Differentiable in every tensor argument; ONNX-exportable (``solve3``)."""
    J = torch.matmul(joint_regressor.to(verts_rel), verts_rel)        # (B, J, 3) regressed joints, root-relative
    X, Y, Z = J[..., 0], J[..., 1], J[..., 2]                          # (B, J) each
    fx, s, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]   # (B, 1) each
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    du = joints_px[..., 0] - cx                                        # (B, J) u − cx
    dv = joints_px[..., 1] - cy                                        # (B, J) v − cy
    zero = torch.zeros_like(du)
    # rows [fx, s, −(u−cx)] · t = (u−cx) Z − fx X − s Y  and  [0, fy, −(v−cy)] · t = (v−cy) Z − fy Y
    row_u = torch.stack([fx.expand_as(du), s.expand_as(du), -du], dim=-1)        # (B, J, 3)
    row_v = torch.stack([zero, fy.expand_as(dv), -dv], dim=-1)                   # (B, J, 3)
    A = torch.cat([row_u, row_v], dim=1)                               # (B, 2J, 3)
    b = torch.cat([du * Z - fx * X - s * Y, dv * Z - fy * Y], dim=1)   # (B, 2J)
    w = torch.ones_like(du) if weights is None else weights.to(du)
    w = torch.cat([w, w], dim=1)[..., None]                            # (B, 2J, 1): each joint weighs both its rows
    AtW = (A * w).transpose(1, 2)                                      # (B, 3, 2J)
    return solve3(AtW @ A, (AtW @ b[..., None])[..., 0])               # (B, 3): (AᵀWA) t = AᵀWb


def solve3(M: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """x with M x = r for batches of 3×3 systems (M (B, 3, 3), r (B, 3)) by the adjugate: x = adj(M) r / det(M).

    M is first scaled by 3/trace(M) (AᵀWA is positive definite; its entries grow as the focal length squared), so
    the cofactors stay near 1 in float32. Exportable to ONNX, unlike torch.linalg.solve."""
    scale = 3.0 / (M[:, 0, 0] + M[:, 1, 1] + M[:, 2, 2])[:, None]      # (B, 1)
    m = M * scale[..., None]
    r = r * scale
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    g, h, i = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    adj = torch.stack([torch.stack([e * i - f * h, c * h - b * i, b * f - c * e], -1),
                       torch.stack([f * g - d * i, a * i - c * g, c * d - a * f], -1),
                       torch.stack([d * h - e * g, b * g - a * h, a * e - b * d], -1)], dim=1)   # (B, 3, 3)
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)                     # (B,)
    return (adj @ r[..., None])[..., 0] / det[:, None]


def _pixels_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """Crop pixels (integer pixel centres) → grid_sample's [−1, 1] with align_corners=False: 2(u + 0.5)/128 − 1,
    so −1 / +1 are the crop's outer edges and the same grid addresses every map that covers the crop."""
    return 2.0 * (uv + 0.5) / INPUT_SIZE - 1.0


# --- the refiner -------------------------------------------------------------------------------------------------

class AlignmentRefiner(nn.Module):
    """Per-vertex offsets for the rough camera-frame mesh from features sampled where its vertices project.

    forward(image (B, 3, 128, 128), shallow (B, Cs, 64, 64), joint_maps (B, 21, 16, 16), latent (B, 256, 4, 4),
    verts_cam (B, V, 3) metres, camera frame, K (B, 3, 3) the crop's intrinsics (128-px crop pixels))
    → {"offsets": (B, V, 3), "verts": verts_cam + offsets}.

    Vertex features: image (3) + shallow (Cs) + joint maps (21), bilinearly sampled at the projected vertex (zero
    outside the crop), + the global feature (``hidden``) + the position about the mesh's mean ×10 (3).
    Then ``input_fc`` → ReLU, ``layers`` × [h ← h + ReLU(DSConv(h))], ``head`` → 3. The head starts at zero (weights
    and bias), so an untrained refiner returns the rough mesh unchanged; note that this also means the first
    backward pass reaches only the head (everything below it receives zero gradient until the head has moved).
    """

    def __init__(self, spiral: torch.Tensor | np.ndarray, shallow_channels: int, joint_channels: int = N_JOINTS,
                 latent_channels: int = LATENT_SIZE, hidden: int = 64, layers: int = 3):
        super().__init__()
        spiral = torch.as_tensor(spiral).long()
        self.global_fc = nn.Linear(latent_channels, hidden)
        self.input_fc = nn.Linear(3 + shallow_channels + joint_channels + hidden + 3, hidden)
        self.blocks = nn.ModuleList([DSConv(hidden, hidden, spiral) for _ in range(layers)])
        self.head = nn.Linear(hidden, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor, shallow: torch.Tensor, joint_maps: torch.Tensor, latent: torch.Tensor,
                verts_cam: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        grid = _pixels_to_grid(project(verts_cam, K))[:, :, None, :]   # (B, V, 1, 2)
        sampled = [F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[..., 0]
                   .transpose(1, 2) for m in (image, shallow, joint_maps)]            # (B, V, C_m) each
        g = F.relu(self.global_fc(latent.mean(dim=(2, 3))))            # (B, hidden)
        g = g[:, None, :].expand(-1, verts_cam.shape[1], -1)           # (B, V, hidden)
        pos = (verts_cam - verts_cam.mean(dim=1, keepdim=True)) * POSITION_SCALE     # (B, V, 3)
        h = F.relu(self.input_fc(torch.cat(sampled + [g, pos], dim=-1)))             # (B, V, hidden)
        for block in self.blocks:
            h = h + F.relu(block(h))                                   # (B, V, hidden)
        offsets = self.head(h)                                         # (B, V, 3)
        return {"offsets": offsets, "verts": verts_cam + offsets}


# --- soft silhouette (training only) -----------------------------------------------------------------------------

def soft_silhouette(verts_px: torch.Tensor, faces: torch.Tensor | np.ndarray, size: int = 64, scale: float = 0.5,
                    sigma: float = 0.5) -> torch.Tensor:
    """SoftRas-style silhouette (B, size, size) in [0, 1] of the mesh projected to verts_px (B, V, 2) (pixels of the
    128-px crop), rendered at ``size`` × ``size`` (``scale`` = size / 128), ``sigma`` in output pixels.

    Pixel (row i, column j) of the output has its centre at (j, i); a crop pixel coordinate u maps to
    (u + 0.5)·scale − 0.5 (the same pixel-centre convention at both resolutions, so a mask made by area-resizing the
    128-px mask lines up). Faces are taken FACE_CHUNK at a time; under autograd each chunk is checkpointed (recomputed
    in backward), so memory stays at one chunk's intermediates, ~20·B·size²·FACE_CHUNK floats (~80 MB per batch item
    at 64²), instead of all faces' (~0.5 GB per batch item for 1.5k faces).
    """
    faces = torch.as_tensor(faces, device=verts_px.device).long()
    B = verts_px.shape[0]
    p = (verts_px + 0.5) * scale - 0.5                                 # (B, V, 2) output-grid pixels
    coords = torch.arange(size, device=p.device, dtype=p.dtype)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pix = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)        # (P, 2) pixel centres (x, y)
    log_empty = torch.zeros(B, pix.shape[0], dtype=p.dtype, device=p.device)     # (B, P) Σ_f log(1 − D_f)
    recompute = torch.is_grad_enabled() and p.requires_grad
    for start in range(0, faces.shape[0], FACE_CHUNK):
        f = faces[start:start + FACE_CHUNK]
        if recompute:       # keep only each chunk's (B, P) sum for backward; its intermediates are recomputed
            log_empty = log_empty + checkpoint(_log_empty, p, f, pix, sigma, use_reentrant=False)
        else:
            log_empty = log_empty + _log_empty(p, f, pix, sigma)
    return (1.0 - torch.exp(log_empty)).reshape(B, size, size)


def _log_empty(p: torch.Tensor, f: torch.Tensor, pix: torch.Tensor, sigma: float) -> torch.Tensor:
    """Σ over the faces f (Fc, 3) of log(1 − D_f) at every pixel centre pix (P, 2), p (B, V, 2): (B, P)."""
    tri = p[:, f]                                                      # (B, Fc, 3, 2)
    # twice the signed area; its sign makes every edge's distance positive on the triangle's side (ties: +)
    area2 = _cross2(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])        # (B, Fc)
    orient = torch.where(area2 >= 0, 1.0, -1.0).to(p.dtype)[:, None, :]              # (B, 1, Fc)
    qx, qy = pix[None, :, 0, None], pix[None, :, 1, None]              # (1, P, 1) pixel centres
    lines, seg2s = [], []
    for k in range(3):                                                 # edge s → e, x and y kept apart: (B, P, Fc)
        s, e = tri[:, :, k], tri[:, :, (k + 1) % 3]                    # (B, Fc, 2)
        ex, ey = (e[..., 0] - s[..., 0])[:, None], (e[..., 1] - s[..., 1])[:, None]  # (B, 1, Fc)
        len2 = (ex * ex + ey * ey).clamp(min=1e-12)                    # (B, 1, Fc)
        rx, ry = qx - s[:, None, :, 0], qy - s[:, None, :, 1]          # (B, P, Fc) pixel centre − edge start
        line = (ex * ry - ey * rx) * (orient / len2.sqrt())            # cross(edge, q − s)/|edge|, + inside
        along = ((ex * rx + ey * ry) / len2).clamp(0.0, 1.0)           # the segment's closest point: s + along·edge
        ox, oy = rx - along * ex, ry - along * ey
        seg2 = ox * ox + oy * oy                                       # squared distance to the segment
        lines.append(line)
        seg2s.append(seg2)
    inner = torch.minimum(torch.minimum(lines[0], lines[1]), lines[2])
    outer2 = torch.minimum(torch.minimum(seg2s[0], seg2s[1]), seg2s[2])
    # inside (all three lines' distances > 0): the distance to the outline; outside: to the triangle, negated
    d = torch.where(inner > 0, inner, -(outer2 + 1e-12).sqrt())        # (B, P, Fc)
    # log(1 − sigmoid(x)) = logsigmoid(−x): exact and finite (log(1 − D + ε) with ε = 1e-6 would add ~ε per
    # face far from the mesh, Σ over 1.5k faces > 0, and push the silhouette below 0 there)
    return F.logsigmoid(-d / sigma).sum(dim=-1)                        # (B, P)


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of the 2D cross product, (..., 2) × (..., 2) → (...)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def silhouette_loss(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of the soft silhouette pred (B, H, W) in [0, 1] against the mask (B, H, W) in [0, 1]
    (soft masks allowed). BCE rather than L1: its gradient grows as a pixel the mask covers goes empty, pulling the
    outline out to the mask's edge where L1's stays flat. pred is clamped to [1e-6, 1 − 1e-6] (bounded loss)."""
    return F.binary_cross_entropy(pred.clamp(1e-6, 1.0 - 1e-6), mask.to(pred))


# --- mesh losses (training) ---------------------------------------------------------------------------------------

def _face_edges(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three edges of every face: v1 − v0, v2 − v1, v0 − v2, each (B, F, 3)."""
    v0, v1, v2 = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    return v1 - v0, v2 - v1, v0 - v2


def normal_loss(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor | np.ndarray) -> torch.Tensor:
    """MobRecon's normal loss: the mean over faces and their three edges of |cos| between the predicted edge direction
    and the ground-truth face's unit normal n = normalize((g1 − g0) × (g2 − g0)). Every edge of a face lies in its
    plane, so the loss is 0 when pred's faces are parallel to gt's (pred == gt included)."""
    faces = torch.as_tensor(faces, device=pred.device).long()
    g01, _, g20 = _face_edges(gt, faces)
    n = F.normalize(torch.cross(g01, -g20, dim=-1), dim=-1)            # (B, F, 3) gt normals
    cos = [(F.normalize(e, dim=-1) * n).sum(dim=-1).abs() for e in _face_edges(pred, faces)]   # (B, F) each
    return torch.stack(cos).mean()


def edge_length_loss(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean over faces and their three edges of | ‖e_pred‖ − ‖e_gt‖ | (each shared edge counted once per face).
    Invariant to rigid motions of either mesh."""
    faces = torch.as_tensor(faces, device=pred.device).long()
    diffs = [(ep.norm(dim=-1) - eg.norm(dim=-1)).abs()
             for ep, eg in zip(_face_edges(pred, faces), _face_edges(gt, faces))]  # (B, F) each
    return torch.stack(diffs).mean()


# --- the whole network with its refinement -------------------------------------------------------------------------

class RefinedMobRecon(nn.Module):
    """MobRecon, its mesh placed in the crop's camera by ``register_translation`` on its own 2D joints, then Tang et
    al.'s refinement.

    forward(image (B, 3, 128, 128), K (B, 3, 3) the crop's intrinsics) → the base network's outputs ("verts" wrist-
    relative in ``units_per_m`` units, "joints_2d" in [0, 1] of the crop, ...) plus "translation" (B, 3) metres,
    "verts_rough_cam" (B, V, 3) and "verts_cam" (B, V, 3), the refined mesh, metres, crop camera frame.
    """

    def __init__(self, base: nn.Module, joint_regressor: torch.Tensor | np.ndarray, units_per_m: float = 10.0,
                 hidden: int = 64, layers: int = 3):
        super().__init__()
        self.base = base
        self.units_per_m = float(units_per_m)
        self.register_buffer("joint_regressor", torch.as_tensor(np.asarray(joint_regressor), dtype=torch.float32))
        spiral = base.decoder3d.head.spiral
        shallow = base.backbone.pre_layer[1].conv1x1
        channels = shallow.primary[0].out_channels * 2 if hasattr(shallow, "primary") else shallow[0].out_channels
        self.refiner = AlignmentRefiner(spiral, channels, hidden=hidden, layers=layers)

    def forward(self, image: torch.Tensor, K: torch.Tensor, landmarks_2d: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """``landmarks_2d`` (B, 21, 2) in [0, 1] of the crop: given landmarks for the base network's decoder (see
        ``MobRecon.forward``) and for the registration; None: the network's own 2D joints for both."""
        out = self.base(image, landmarks_2d)
        rel = out["verts"] / self.units_per_m                                      # (B, V, 3) metres
        joints_2d = out["joints_2d"] if landmarks_2d is None else landmarks_2d
        t = register_translation(rel, self.joint_regressor, joints_2d * INPUT_SIZE, K)
        rough = rel + t[:, None, :]
        ref = self.refiner(image, out["shallow"], out["joint_maps"], out["latent"], rough, K)
        out.update(translation=t, verts_rough_cam=rough, verts_cam=ref["verts"])
        return out

