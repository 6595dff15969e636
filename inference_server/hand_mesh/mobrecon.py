"""MobRecon (Chen et al., *MobRecon: Mobile-Friendly Hand Mesh Reconstruction from Monocular Image*, CVPR 2022) in
torch, exportable to ONNX. Touches no GPU unless the caller moves it there.

    image (B, 3, 128, 128), values (rgb − 0.5) / 0.5
      │ 2D encoder: DenseStack or GhostStack (two stacked hourglasses)
      ├─ MapReg: the last stack's 16×16 maps, one per joint (21), flattened and regressed to (u, v) ∈ [0, 1]²
      │          by a small MLP: heatmap-like maps with a regression head (the 2D joints, "joint_img")
      └─ latent: the deepest 4×4 feature map (256 channels)
    pose pooling: the latent sampled (bilinear) at the 21 predicted joints → (B, 21, 256)
    pose-to-vertex lifting (PVL): a learned (V_coarse × 21) matrix → (B, 49, 256)
    DSConv decoder: up-sample along the mesh hierarchy (``hierarchy.MeshHierarchy``: 49 → 98 → 195 → 389 → 778),
      each level a depth-separable spiral convolution + ReLU, then a DSConv head to 3D → vertices (B, 778, 3)

The depth-separable spiral convolution (DSConv): gather each vertex's spiral of 9 neighbours, a depth-wise 3×3
"convolution" over that 9-long sequence (one 9-weight filter per channel, no mixing), then a point-wise linear layer
mixing channels. Its cost per vertex is C·9 + C·C' against the plain spiral convolution's 9·C·C'.

Module and parameter names follow the authors' released code (``backbone.*``, ``decoder3d.*``) so that their
released MobRecon-DenseStack checkpoint loads (``checkpoint.load_authors_checkpoint``); the code is written here.
Their DenseStack keeps three modules its first stack never calls (``senet3``, ``dense4``, ``dense5``): they are kept
too, unused, so the checkpoint loads strictly and the parameter count is the one their table reports.

GhostStack is not in the authors' public code. Here it is the same two-stack topology with GhostNet's ghost module
(Han et al., CVPR 2020: a point-wise convolution makes half the output channels, a cheap depth-wise 3×3 makes the
other half from them) in place of every point-wise convolution, a narrower stem (32 channels) and stacks (88),
and squeeze-excitation inside the 4×4 units (where GhostNet's last stages have it). The widths were chosen so that
its size lands on the paper's figures (5.3M parameters, 123.5M multiply-adds with the decoder);
``python -m inference_server.hand_mesh count`` prints ours beside them.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hierarchy import MeshHierarchy

N_JOINTS = 21
INPUT_SIZE = 128
LATENT_SIZE = 256
DECODER_CHANNELS = (32, 64, 128, 256)   # level 0 (the template) … level 3; level 4 takes the lifted joints
# The decoder's activation: the authors' ReLU (leak 0) left 60-70 % of the decoder's channels dead after 200 steps of
# training here (root-relative vertices of hands seen from every side average to ~0, and the decoder settled on
# predicting that); a leaky ReLU keeps them alive. The authors' checkpoint is loaded with leak 0.
DECODER_LEAK = 0.1
# Also ours: the 2D joints about the wrist mapped linearly onto the vertices and added to the decoder's output. From
# MobRecon's design alone the decoder sat at the all-zero mean for the first few thousand crops here (its only view
# of where the joints are is where the latent is sampled); with the direct path the x/y of the mesh follow the 2D
# joints from the start. The authors' checkpoint is loaded without it.
UV_SKIP = True
UV_SKIP_GAIN = 4.0   # a hand spans ~2/3 of the crop and ~2 dm: the gain puts the map's weights near 1


# --- building blocks ---------------------------------------------------------------------------------------------

def conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, bn: bool = True,
            relu: bool = True) -> nn.Sequential:
    """Conv (no bias) [+ BatchNorm] [+ ReLU], as one Sequential (indices 0, 1, 2 in the state dict)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linear_bn(c_in: int, c_out: int, bn: bool = True, relu: bool = True) -> nn.Sequential:
    """Linear (no bias) [+ BatchNorm1d] [+ Hardtanh(0, 4), a ReLU capped at 4]."""
    layers: list[nn.Module] = [nn.Linear(c_in, c_out, bias=False)]
    if bn:
        layers.append(nn.BatchNorm1d(c_out))
    if relu:
        layers.append(nn.Hardtanh(0.0, 4.0))
    return nn.Sequential(*layers)


class GhostConv(nn.Module):
    """GhostNet's ghost module as a point-wise convolution: c_out/2 channels from a 1×1 conv, the other c_out/2 from
    a depth-wise 3×3 conv of those (BatchNorm + ReLU after each)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        half = c_out // 2
        self.primary = conv_bn(c_in, half)
        self.cheap = conv_bn(half, c_out - half, 3, groups=half) if c_out - half == half else \
            conv_bn(half, c_out - half, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: channel weights from the global average through two small linear layers."""

    def __init__(self, c: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or min(c // 2, 256)
        self.fc1 = linear_bn(c, hidden)
        self.fc2 = linear_bn(hidden, c, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(self.fc1(x.mean(dim=(2, 3)))))
        return x * w[:, :, None, None]


class MobileUnit(nn.Module):
    """Depth-wise 3×3 (one or two) then point-wise; a residual where the shape allows. ``se`` puts a
    squeeze-excitation (hidden width c_in/4, GhostNet's) between them."""

    def __init__(self, c_in: int, c_out: int, n3x3: int = 1, ghost: bool = False, se: bool = False):
        super().__init__()
        self.residual = c_in == c_out
        self.conv3x3 = nn.Sequential(*[conv_bn(c_in, c_in, 3, groups=c_in) for _ in range(n3x3)])
        self.se = SEBlock(c_in, hidden=c_in // 4) if se else None
        self.conv1x1 = GhostConv(c_in, c_out) if ghost else conv_bn(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        out = self.conv1x1(y if self.se is None else self.se(y))
        return out + x if self.residual else out


class DenseBlock(nn.Module):
    """Densely connected units: unit k sees the input and every earlier unit's output, concatenated.

    ``widths`` are the units' output channels; ``keep_input=False`` leaves the input out of the block's output
    (the authors' "noExpand" block, whose output is only its units')."""

    def __init__(self, c_in: int, widths: list[int], keep_input: bool = True, ghost: bool = False,
                 se: bool = False):
        super().__init__()
        self.keep_input = keep_input
        seen = c_in
        for k, w in enumerate(widths, start=1):
            self.add_module(f"conv{k}", MobileUnit(seen, w, ghost=ghost, se=se))
            seen += w
        self.n_units = len(widths)
        self.c_out = seen if keep_input else seen - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for k in range(1, self.n_units + 1):
            feats.append(getattr(self, f"conv{k}")(torch.cat(feats, dim=1) if len(feats) > 1 else x))
        return torch.cat(feats if self.keep_input else feats[1:], dim=1)


def _dense(c: int, kind: str, ghost: bool, se: bool = False) -> DenseBlock:
    if kind == "x4":    # four units of c/4: doubles the channels
        return DenseBlock(c, [c // 4] * 4, ghost=ghost, se=se)
    if kind == "x2":    # two units of c/2: doubles the channels
        return DenseBlock(c, [c // 2] * 2, ghost=ghost, se=se)
    return DenseBlock(c, [c * 3 // 4, c // 4], keep_input=False, ghost=ghost, se=se)   # "flat": c → c


class Hourglass(nn.Module):
    """One stack: three dense blocks down (32 → 4 px for a 32 px input), three shrinking units up with skips.

    ``second=True`` is the second stack: squeeze-excitation on the third block too, two flat dense blocks at the
    bottom (whose output is the latent), and no final up-sampling (its maps stay at half the input's size).
    ``keep_unused`` gives the first stack those three modules as well, never called (the authors' layout)."""

    def __init__(self, c: int, c_out: int, second: bool, ghost: bool = False, keep_unused: bool = False):
        super().__init__()
        self.second = second
        self.dense1, self.senet1 = _dense(c, "x2", ghost), SEBlock(2 * c)
        self.dense2, self.senet2 = _dense(2 * c, "x4", ghost), SEBlock(4 * c)
        se = ghost          # the ghost variant puts squeeze-excitation in its 4×4 units, as GhostNet's last stages do
        self.dense3 = _dense(4 * c, "x4", ghost)
        if second or keep_unused:
            self.senet3 = SEBlock(8 * c)
            self.dense4, self.dense5 = _dense(8 * c, "flat", ghost, se), _dense(8 * c, "flat", ghost, se)
        self.thrink1 = nn.Sequential(MobileUnit(8 * c, 4 * c, ghost=ghost, se=se),
                                     MobileUnit(4 * c, 4 * c, 2, ghost=ghost, se=se))
        self.senet4 = SEBlock(4 * c)
        self.thrink2 = nn.Sequential(MobileUnit(4 * c, 2 * c, ghost=ghost), MobileUnit(2 * c, 2 * c, 2, ghost=ghost))
        self.senet5 = SEBlock(2 * c)
        self.thrink3 = nn.Sequential(MobileUnit(2 * c, 2 * c, ghost=ghost), MobileUnit(2 * c, c_out, 2, ghost=ghost))
        self.senet6 = SEBlock(c_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d1 = F.avg_pool2d(self.senet1(self.dense1(x)), 2)
        d2 = F.avg_pool2d(self.senet2(self.dense2(d1)), 2)
        d3 = self.dense3(d2)
        if self.second:
            d3 = self.dense5(self.dense4(F.avg_pool2d(self.senet3(d3), 2)))
        else:
            d3 = F.avg_pool2d(d3, 2)           # the first stack never uses senet3, dense4, dense5
        u1 = F.interpolate(self.senet4(self.thrink1(d3)), scale_factor=2.0, mode="nearest") + d2
        u2 = F.interpolate(self.senet5(self.thrink2(u1)), scale_factor=2.0, mode="nearest") + d1
        u3 = self.senet6(self.thrink3(u2))
        if not self.second:
            u3 = F.interpolate(u3, scale_factor=2.0, mode="bilinear", align_corners=True)
        return u3, d3


class StackEncoder(nn.Module):
    """The 2D encoder with MapReg: image (B, 3, 128, 128) → latent (B, 256, 4, 4), joints (B, 21, 2) in [0, 1]
    (fractions of the crop, x right, y down; about, not clamped)."""

    def __init__(self, width: int = 128, maps: int = 24, ghost: bool = False, stem: int | None = None,
                 keep_unused: bool = False):
        super().__init__()
        c = width
        s = stem or c
        pointwise = GhostConv if ghost else conv_bn
        self.pre_layer = nn.Sequential(conv_bn(3, s // 2, 3, 2), MobileUnit(s // 2, s, ghost=ghost))
        self.thrink = pointwise(4 * s, c)
        self.dense_stack1 = Hourglass(c, maps, second=False, ghost=ghost, keep_unused=keep_unused)
        self.stack1_remap = conv_bn(maps, maps)
        self.thrink2 = pointwise(maps + c, c)
        self.dense_stack2 = Hourglass(c, maps, second=True, ghost=ghost)
        self.mid_proj = conv_bn(8 * c, LATENT_SIZE, bn=False, relu=False)
        self.reduce = conv_bn(maps, N_JOINTS, bn=False, relu=False)
        self.uv_reg = nn.Sequential(linear_bn(256, 128, bn=False), linear_bn(128, 64, bn=False),
                                    linear_bn(64, 2, bn=False, relu=False))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        shallow = self.pre_layer(image)                               # (B, c, 64, 64)
        x = self.thrink(F.pixel_unshuffle(shallow, 2))                # (B, c, 32, 32): space to depth, then 1×1
        s1, _ = self.dense_stack1(x)                                  # (B, maps, 32, 32)
        x2 = self.thrink2(torch.cat([self.stack1_remap(s1), x], dim=1))
        maps, deep = self.dense_stack2(x2)                            # (B, maps, 16, 16), (B, 8c, 4, 4)
        joint_maps = self.reduce(maps)                                # (B, 21, 16, 16)
        uv = self.uv_reg(joint_maps.flatten(2))                       # (B, 21, 2)
        return {"latent": self.mid_proj(deep), "joints_2d": uv, "shallow": shallow, "joint_maps": joint_maps}


class DSConv(nn.Module):
    """Depth-separable spiral convolution over a fixed spiral index (V, S), S a square (9)."""

    def __init__(self, c_in: int, c_out: int, spiral: torch.Tensor):
        super().__init__()
        side = int(round(spiral.shape[1] ** 0.5))
        if side * side != spiral.shape[1]:
            raise ValueError(f"a DSConv spiral must have a square length, not {spiral.shape[1]}")
        self.register_buffer("spiral", spiral.long(), persistent=False)
        self.spatial_layer = nn.Conv2d(c_in, c_in, side, groups=c_in, bias=False)
        self.channel_layer = nn.Linear(c_in, c_out, bias=False)
        # He initialisation (fan-in 9 for the depth-wise filter, c_in for the mixing): the authors' Xavier
        # initialisation of the depth-wise filter (fan-out 9·c_in) shrinks the signal ~10× per level, and from it the
        # decoder did not move in 40 steps here (tests/engine/test_hand_mesh_synth_train.py)
        nn.init.kaiming_uniform_(self.spatial_layer.weight, nonlinearity="linear")
        nn.init.kaiming_uniform_(self.channel_layer.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, V, C) → (B, V, C')
        B, V, C = x.shape[0], self.spiral.shape[0], x.shape[2]
        g = x[:, self.spiral.reshape(-1)].reshape(B * V, self.spiral.shape[1], C)   # (B·V, S, C)
        side = self.spatial_layer.kernel_size[0]
        g = g.transpose(1, 2).reshape(B * V, C, side, side)
        return self.channel_layer(self.spatial_layer(g).reshape(B, V, C))


class SpiralConv(nn.Module):
    """The plain spiral convolution (Gong et al. 2019): one linear layer over the concatenated spiral."""

    def __init__(self, c_in: int, c_out: int, spiral: torch.Tensor):
        super().__init__()
        self.register_buffer("spiral", spiral.long(), persistent=False)
        self.layer = nn.Linear(c_in * spiral.shape[1], c_out)
        nn.init.xavier_uniform_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, V = x.shape[0], self.spiral.shape[0]
        return self.layer(x[:, self.spiral.reshape(-1)].reshape(B, V, -1))


class _UpConv(nn.Module):
    """Up-sample one level along the hierarchy (barycentric, three coarse vertices per fine one), mesh conv, then
    ReLU (the authors') or a leaky ReLU (slope ``leak``)."""

    def __init__(self, c_in: int, c_out: int, spiral: torch.Tensor, meshconv: type[nn.Module], leak: float = 0.0):
        super().__init__()
        self.conv = meshconv(c_in, c_out, spiral)
        self.leak = float(leak)

    def forward(self, x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        up = (x[:, index.reshape(-1)].reshape(x.shape[0], index.shape[0], 3, x.shape[2]) * weight[None, :, :, None])
        y = self.conv(up.sum(dim=2))
        return F.leaky_relu(y, self.leak) if self.leak else F.relu(y)


class MeshDecoder(nn.Module):
    """Pose pooling, pose-to-vertex lifting and the spiral decoder: (joints (B, 21, 2), latent (B, 256, h, w)) →
    vertices (B, V_0, 3)."""

    def __init__(self, hierarchy: MeshHierarchy, channels: tuple[int, ...] = DECODER_CHANNELS,
                 conv: str = "dsconv", leak: float = 0.0, uv_skip: bool = False):
        super().__init__()
        n_up = len(hierarchy.up_index)
        if len(channels) != n_up:
            raise ValueError(f"{len(channels)} decoder widths for a hierarchy with {n_up} up-samplings")
        meshconv = {"dsconv": DSConv, "spiral": SpiralConv}[conv]
        spirals = [torch.as_tensor(s) for s in hierarchy.spirals]
        for lv in range(n_up):
            self.register_buffer(f"up_index_{lv}", torch.as_tensor(hierarchy.up_index[lv]).long(), persistent=False)
            self.register_buffer(f"up_weight_{lv}", torch.as_tensor(hierarchy.up_weight[lv]).float(),
                                 persistent=False)
        self.n_up = n_up
        # de_layer[i] works at level n_up-1-i: widths run 256 → 256 → 128 → 64 → 32 for MobRecon's defaults
        self.de_layer = nn.ModuleList()
        for i in range(n_up):
            level = n_up - 1 - i
            c_in = channels[-1] if i == 0 else channels[level + 1]
            self.de_layer.append(_UpConv(c_in, channels[level], spirals[level], meshconv, leak))
        self.head = meshconv(channels[0], 3, spirals[0])
        self.upsample = nn.Parameter(torch.full((hierarchy.sizes[-1], N_JOINTS), 1.0 / N_JOINTS))   # PVL matrix
        # ours, not the paper's: a linear map from the 2D joints (about the wrist) straight to the vertices, added to
        # the decoder's output (starts at zero). See UV_SKIP.
        self.uv_lift = nn.Linear(2 * N_JOINTS, 3 * hierarchy.sizes[0]) if uv_skip else None
        if self.uv_lift is not None:
            nn.init.zeros_(self.uv_lift.weight)
            nn.init.zeros_(self.uv_lift.bias)

    def pool(self, latent: torch.Tensor, joints_2d: torch.Tensor) -> torch.Tensor:
        """The latent map sampled at each joint: (B, 21, C)."""
        grid = ((joints_2d - 0.5) * 2.0).clamp(-1.0, 1.0)[:, :, None, :]               # (B, 21, 1, 2)
        return F.grid_sample(latent, grid, align_corners=True)[..., 0].transpose(1, 2)

    def forward(self, joints_2d: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        x = torch.matmul(self.upsample, self.pool(latent, joints_2d))                   # (B, V_coarse, C)
        for i, layer in enumerate(self.de_layer):
            level = self.n_up - 1 - i
            x = layer(x, getattr(self, f"up_index_{level}"), getattr(self, f"up_weight_{level}"))
        verts = self.head(x)
        if self.uv_lift is not None:
            rel = UV_SKIP_GAIN * (joints_2d - joints_2d[:, :1]).flatten(1)              # (B, 42)
            verts = verts + self.uv_lift(rel).reshape(verts.shape)
        return verts


ENCODERS = {
    # name: StackEncoder options
    "densestack": dict(width=128, maps=24, keep_unused=True),
    "ghoststack": dict(width=88, maps=24, ghost=True, stem=32),
}


class MobRecon(nn.Module):
    """Image crop → 2D joints and mesh vertices.

    forward(image (B, 3, 128, 128)) → {"verts": (B, V, 3) root-relative in the units the network was trained in,
    "joints_2d": (B, 21, 2) in [0, 1] of the crop, plus the encoder's "latent", "shallow" and "joint_maps" for the
    refine stage}.
    """

    def __init__(self, hierarchy: MeshHierarchy, encoder: str = "densestack", conv: str = "dsconv",
                 leak: float = DECODER_LEAK, uv_skip: bool = UV_SKIP):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; one of {sorted(ENCODERS)}")
        self.encoder_name = encoder
        self.leak = float(leak)
        self.uv_skip = bool(uv_skip)
        self.backbone = StackEncoder(**ENCODERS[encoder])
        self.decoder3d = MeshDecoder(hierarchy, conv=conv, leak=leak, uv_skip=uv_skip)

    def forward(self, image: torch.Tensor, landmarks_2d: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``landmarks_2d`` (B, 21, 2) in [0, 1] of the crop: where the decoder pools the latent (and what the 2D
        skip lifts) instead of the network's own 2D joints — the detector's landmarks at inference, the true joints
        (with noise) in training. None: the network's own, as in the paper."""
        enc = self.backbone(image)
        enc["verts"] = self.decoder3d(enc["joints_2d"] if landmarks_2d is None else landmarks_2d, enc["latent"])
        return enc
