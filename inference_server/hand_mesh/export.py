"""The mesh network to ONNX and back: our checkpoints and the authors', export, and an ONNX Runtime runner.
torch for loading and export; the runner needs only onnxruntime and numpy.

ONNX graph ``hand_mesh``: input ``image`` (B, 3, 128, 128) float32, (rgb in [0, 1] − 0.5) / 0.5; outputs ``verts``
(B, V, 3) and ``joints_2d`` (B, 21, 2) (fractions of the crop). Batch axis dynamic. Metadata: the encoder, the
template, the vertex count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .hierarchy import MeshHierarchy
from .mobrecon import INPUT_SIZE, MobRecon

ONNX_INPUTS = ("image",)
ONNX_OUTPUTS = ("verts", "joints_2d")


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
    def __init__(self, model: MobRecon):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        return out["verts"], out["joints_2d"]


def export_onnx(model: MobRecon, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write the network (eval mode) to ONNX (opset 17, the TorchScript exporter as elsewhere), atomically."""
    import os
    import tempfile
    import warnings

    import onnx

    was_training = model.training
    wrapper = _ExportWrapper(model).eval()   # export() restores the wrapper's mode afterwards: it must be eval too
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), tmp,
                              dynamo=False, opset_version=17, input_names=list(ONNX_INPUTS),
                              output_names=list(ONNX_OUTPUTS),
                              dynamic_axes={n: {0: "batch"} for n in ONNX_INPUTS + ONNX_OUTPUTS})
        proto = onnx.load(tmp)
        meta = {"reel2rig": "hand_mesh", "encoder": model.encoder_name,
                "vertices": str(model.decoder3d.head.spiral.shape[0]), **(metadata or {})}
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

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (B, 3, 128, 128) float32, normalised → (verts (B, V, 3), joints_2d (B, 21, 2))."""
        verts, joints = self.session.run(list(ONNX_OUTPUTS), {"image": np.ascontiguousarray(image, np.float32)})
        return verts, joints
