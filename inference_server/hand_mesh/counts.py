"""Parameter and multiply-add counts of the mesh network, beside the MobRecon paper's table. torch, CPU.

Parameters are those the forward pass uses (a parameter counts when it receives a gradient), as the paper counts
them: the authors' DenseStack carries 3.1M parameters its first stack never calls (kept here so their checkpoint
loads), which their table leaves out. Multiply-adds are torch's FLOP counter's count (matrix products and
convolutions; 2 FLOPs per multiply-add) for one 128×128 crop; the gathers, poolings and element-wise operations are
not counted (nor are they by the usual counters).
"""
from __future__ import annotations

import dataclasses

import torch

from .hierarchy import MeshHierarchy
from .mobrecon import INPUT_SIZE, MobRecon

# MobRecon, CVPR 2022, the 2D encoders' table: (parameters, multiply-adds), each with the DSConv decoder over MANO.
PAPER = {"densestack": (8.1e6, 439.9e6), "ghoststack": (5.3e6, 123.5e6)}


@dataclasses.dataclass(frozen=True)
class Counts:
    encoder: str
    params_used: int
    params_stored: int
    mult_adds: int

    def ratios(self) -> tuple[float, float]:
        p, m = PAPER[self.encoder]
        return self.params_used / p, self.mult_adds / m


def count(hierarchy: MeshHierarchy, encoder: str) -> Counts:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = MobRecon(hierarchy, encoder).train()
    out = model(torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE))
    (out["verts"].sum() + out["joints_2d"].sum()).backward()
    used = sum(p.numel() for p in model.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0))
    stored = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE))
    return Counts(encoder, used, stored, counter.get_total_flops() // 2)


def table(rows: list[Counts], template: str, n_vertices: int) -> str:
    lines = [f"MobRecon sizes with the DSConv decoder over the {template} template ({n_vertices} vertices), "
             "one 128×128 crop",
             "| encoder | params (ours) | params (paper) | ratio | mult-adds (ours) | mult-adds (paper) | ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        p, m = PAPER[r.encoder]
        rp, rm = r.ratios()
        lines.append(f"| {r.encoder} | {r.params_used / 1e6:.2f}M | {p / 1e6:.1f}M | {rp:.3f} | "
                     f"{r.mult_adds / 1e6:.1f}M | {m / 1e6:.1f}M | {rm:.3f} |")
    extra = [r for r in rows if r.params_stored != r.params_used]
    for r in extra:
        lines.append(f"({r.encoder} also stores {(r.params_stored - r.params_used) / 1e6:.2f}M parameters its forward "
                     "pass never uses: the authors' layout, kept so their checkpoint loads.)")
    return "\n".join(lines)
