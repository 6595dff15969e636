"""Loading the MobRecon authors' released checkpoint into ``mobrecon.MobRecon``. torch, CPU.

The authors (github.com/SeanChenxy/HandMesh) save ``{"model_state_dict": ..., "epoch": ..., ...}``; their
DSConv training code names the MapReg reduction ``backbone.reduce``, their released SpiralConv demo network
``backbone.conv``, and a DataParallel run prefixes every name with ``module.``. All of these are accepted. The file is
read with ``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary pickled code.

Their decoder runs over their own MANO mesh hierarchy (their ``template/transform.pkl``); with another template's
hierarchy the weights load (the shapes agree for any 49-vertex coarsest level) but the spirals differ, so use MANO's.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .hierarchy import MeshHierarchy
from .mobrecon import MobRecon

_RENAMES = (("backbone.conv.", "backbone.reduce."),)


class CheckpointError(ValueError):
    """A checkpoint that does not fit the network; the message names the file and what is wrong."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's parameters under our names."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: download MobRecon's checkpoint from the authors' page "
                              "(github.com/SeanChenxy/HandMesh) and give its path")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("model_state_dict"), dict):
        data = data["model_state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    out = {}
    for name, value in data.items():
        name = name[len("module."):] if name.startswith("module.") else name
        for old, new in _RENAMES:
            if name.startswith(old):
                name = new + name[len(old):]
        out[name] = value
    return out


def checkpoint_conv(state: dict[str, torch.Tensor]) -> str:
    """Which mesh convolution the checkpoint's decoder uses: "dsconv" or "spiral"."""
    if any(k.startswith("decoder3d.head.spatial_layer") for k in state):
        return "dsconv"
    if any(k.startswith("decoder3d.head.layer") for k in state):
        return "spiral"
    raise CheckpointError("the checkpoint has no MobRecon decoder head (decoder3d.head.*)")


def load_authors_checkpoint(path: str | Path, hierarchy: MeshHierarchy) -> MobRecon:
    """A MobRecon-DenseStack with the checkpoint's weights (strict: every name and shape must agree)."""
    state = read_state_dict(path)
    model = MobRecon(hierarchy, "densestack", conv=checkpoint_conv(state), leak=0.0,
                     uv_skip=False)   # their ReLU, no 2D skip
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(own[k].shape)} here)")
        raise CheckpointError(f"{path} does not fit MobRecon-DenseStack: " + "; ".join(parts)
                              + ". Use the authors' MobRecon-DenseStack checkpoint (mobrecon_densestack.pt or a "
                              "DSConv checkpoint from their mobrecon/ training)")
    model.load_state_dict(state)
    return model.eval()
