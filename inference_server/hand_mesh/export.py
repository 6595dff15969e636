"""The mesh network to ONNX and back: our checkpoints and the authors', export, and an ONNX Runtime runner.
torch for loading and export; the runner needs only onnxruntime and numpy.

ONNX graph ``hand_mesh``: input ``image`` (B, 3, 128, 128) float32, (rgb in [0, 1] − 0.5) / 0.5; outputs ``verts``
(B, V, 3) and ``joints_2d`` (B, 21, 2) (fractions of the crop), and ``joints3d`` (B, 21, 3) = J·verts when the
network comes with a joint regressor J (ours do: ``train.fit_joint_regressor``). Batch axis dynamic. Metadata: the
encoder, the template, the vertex count, the units.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .hierarchy import MeshHierarchy
from .mobrecon import INPUT_SIZE, MobRecon

ONNX_INPUTS = ("image",)
ONNX_OUTPUTS = ("verts", "joints_2d")
JOINTS_OUTPUT = "joints3d"


def save_checkpoint(model: MobRecon, path: str | Path, extra: dict | None = None) -> None:
    """Our checkpoint: {"model_state_dict", "encoder", **extra}, written atomically."""
    import io

    from ..take import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"model_state_dict": model.state_dict(), "encoder": model.encoder_name, **(extra or {})}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_network(hierarchy: MeshHierarchy, encoder: str = "densestack", weights: str | Path | None = None
                 ) -> MobRecon:
    """A network with ``weights`` (our checkpoint or the authors'), or freshly initialised when None."""
    if weights is None:
        torch.manual_seed(0)
        return MobRecon(hierarchy, encoder).eval()
    from .checkpoint import load_authors_checkpoint

    raw = torch.load(weights, map_location="cpu", weights_only=True) if Path(weights).is_file() else None
    if isinstance(raw, dict) and isinstance(raw.get("encoder"), str):       # ours
        model = MobRecon(hierarchy, raw["encoder"])
        model.load_state_dict(raw["model_state_dict"])
        return model.eval()
    return load_authors_checkpoint(weights, hierarchy)


class _ExportWrapper(torch.nn.Module):
    def __init__(self, model: MobRecon, joint_regressor: np.ndarray | None):
        super().__init__()
        self.model = model
        self.joint_regressor = None if joint_regressor is None else \
            torch.nn.Parameter(torch.as_tensor(joint_regressor, dtype=torch.float32), requires_grad=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        if self.joint_regressor is None:
            return out["verts"], out["joints_2d"]
        return out["verts"], out["joints_2d"], torch.matmul(self.joint_regressor, out["verts"])


def load_joint_regressor(weights: str | Path) -> np.ndarray | None:
    """The joint regressor stored with our checkpoint (None for the authors')."""
    raw = torch.load(weights, map_location="cpu", weights_only=True)
    reg = raw.get("joint_regressor") if isinstance(raw, dict) else None
    return None if reg is None else np.asarray(reg, dtype=np.float64)


def export_onnx(model: MobRecon, path: str | Path, metadata: dict[str, str] | None = None,
                joint_regressor: np.ndarray | None = None) -> None:
    """Write the network (eval mode) to ONNX (opset 17, the TorchScript exporter as elsewhere), atomically."""
    import os
    import tempfile
    import warnings

    import onnx

    was_training = model.training
    wrapper = _ExportWrapper(model, joint_regressor).eval()   # export() restores the wrapper's mode afterwards: it must be eval too
    outputs = ONNX_OUTPUTS + (() if joint_regressor is None else (JOINTS_OUTPUT,))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), tmp,
                              dynamo=False, opset_version=17, input_names=list(ONNX_INPUTS),
                              output_names=list(outputs), dynamic_axes={n: {0: "batch"} for n in ONNX_INPUTS + outputs})
        proto = onnx.load(tmp)
        meta = {"reel2rig": "hand_mesh", "encoder": model.encoder_name,
                "vertices": str(model.decoder3d.head.spiral.shape[0]),
                "units": "verts and joints3d: wrist-relative, decimetres (metres x 10), camera axes of the crop; "
                         "joints_2d: fractions of the 128-px crop", **(metadata or {})}
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        model.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)


class OnnxHandMesh:
    """The exported network under ONNX Runtime (CPU, or CUDA when its provider is there and asked for)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("reel2rig") != "hand_mesh":
            raise ValueError(f"{path} is not a Reel2Rig hand-mesh network (export one with "
                             "`python -m inference_server.hand_mesh export`)")

        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """image (B, 3, 128, 128) float32, normalised → {"verts" (B, V, 3), "joints_2d" (B, 21, 2)[, "joints3d"]}."""
        res = self.session.run(self.outputs, {"image": np.ascontiguousarray(image, np.float32)})
        return dict(zip(self.outputs, res))
