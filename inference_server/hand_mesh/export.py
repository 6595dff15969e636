"""The mesh network to ONNX and back: our checkpoints and the authors', export, and an ONNX Runtime runner.
torch for loading and export; the runner needs only onnxruntime and numpy.

ONNX graph ``hand_mesh``: input ``image`` (B, 3, 128, 128) float32, (rgb in [0, 1] − 0.5) / 0.5; outputs ``verts``
(B, V, 3) and ``joints_2d`` (B, 21, 2) (fractions of the crop), and ``joints3d`` (B, 21, 3) = J·verts when the
network comes with a joint regressor J (ours do: ``train.fit_joint_regressor``). A network with the alignment
refinement (``refine.RefinedMobRecon``) also takes ``K`` (B, 3, 3), the crop's intrinsics, and gives ``verts_cam``
(B, V, 3) and ``joints_cam`` (B, 21, 3): the refined mesh and its joints in the crop camera's frame, metres. A
network trained to pool at given landmarks (``train``'s default; metadata ``landmark_input`` true) takes
``landmarks_2d`` (B, 21, 2) in [0, 1] of the crop: the detector's landmarks.
Batch axis dynamic. Metadata: the encoder, the template, the vertex count, the units.
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
REFINED_OUTPUTS = ("verts_cam", "joints_cam")


def encoder_of(model: torch.nn.Module) -> str:
    return model.base.encoder_name if hasattr(model, "refiner") else model.encoder_name


def save_checkpoint(model: torch.nn.Module, path: str | Path, extra: dict | None = None) -> None:
    """Our checkpoint: {"model_state_dict", "encoder", "refined", **extra}, written atomically."""
    import io

    from ..take import atomic_write_bytes

    buf = io.BytesIO()
    base = model.base if hasattr(model, "refiner") else model
    torch.save({"model_state_dict": model.state_dict(), "encoder": encoder_of(model), "leak": base.leak,
                "uv_skip": base.uv_skip, "landmark_input": bool(getattr(base, "landmark_input", False)),
                "refined": hasattr(model, "refiner"), **(extra or {})}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_network(hierarchy: MeshHierarchy, encoder: str = "densestack", weights: str | Path | None = None
                 ) -> torch.nn.Module:
    """A network with ``weights`` (our checkpoint — a ``RefinedMobRecon`` when it was trained with its refinement —
    or the authors'), or a freshly initialised MobRecon when None."""
    if weights is None:
        torch.manual_seed(0)
        return MobRecon(hierarchy, encoder).eval()
    from .checkpoint import load_authors_checkpoint

    raw = torch.load(weights, map_location="cpu", weights_only=True) if Path(weights).is_file() else None
    if isinstance(raw, dict) and isinstance(raw.get("encoder"), str):       # ours
        model: torch.nn.Module = MobRecon(hierarchy, raw["encoder"], leak=float(raw.get("leak", 0.0)),
                                          uv_skip=bool(raw.get("uv_skip", False)))
        model.landmark_input = bool(raw.get("landmark_input", False))
        if raw.get("refined"):
            from .refine import RefinedMobRecon

            model = RefinedMobRecon(model, raw["joint_regressor"])
        model.load_state_dict(raw["model_state_dict"])
        return model.eval()
    return load_authors_checkpoint(weights, hierarchy)


class _ExportWrapper(torch.nn.Module):
    """Inputs image[, landmarks_2d][, K] as the network takes them; outputs as the module docstring lists."""

    def __init__(self, model: torch.nn.Module, joint_regressor: np.ndarray | None, landmarks: bool):
        super().__init__()
        self.model = model
        self.refined = hasattr(model, "refiner")
        self.landmarks = landmarks
        if self.refined:
            joint_regressor = model.joint_regressor.detach().cpu().numpy()
        self.joint_regressor = None if joint_regressor is None else \
            torch.nn.Parameter(torch.as_tensor(joint_regressor, dtype=torch.float32), requires_grad=False)

    def forward(self, image: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        landmarks = extra[0] if self.landmarks else None
        if self.refined:
            out = self.model(image, extra[-1], landmarks)
        else:
            out = self.model(image, landmarks)
        res = (out["verts"], out["joints_2d"])
        if self.joint_regressor is not None:
            res += (torch.matmul(self.joint_regressor, out["verts"]),)
        if self.refined:
            res += (out["verts_cam"], torch.matmul(self.joint_regressor, out["verts_cam"]))
        return res


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
    refined = hasattr(model, "refiner")
    landmarks = bool(getattr(model.base if refined else model, "landmark_input", False))
    # export() restores the wrapper's mode afterwards: it must be eval too
    wrapper = _ExportWrapper(model, joint_regressor, landmarks).eval()
    outputs = ONNX_OUTPUTS + (() if wrapper.joint_regressor is None else (JOINTS_OUTPUT,)) + (
        REFINED_OUTPUTS if refined else ())
    inputs = ONNX_INPUTS + (("landmarks_2d",) if landmarks else ()) + (("K",) if refined else ())
    example = (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),) + (
        (torch.rand(1, 21, 2) * 0.5 + 0.25,) if landmarks else ()) + (
        (torch.tensor([[[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]]]),) if refined else ())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, example, tmp, dynamo=False, opset_version=17, input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
        proto = onnx.load(tmp)
        base = model.base if refined else model
        meta = {"reel2rig": "hand_mesh", "encoder": base.encoder_name, "refined": str(refined).lower(),
                "landmark_input": str(landmarks).lower(),
                "vertices": str(base.decoder3d.head.spiral.shape[0]),
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
        self.takes_K = any(i.name == "K" for i in self.session.get_inputs())
        self.takes_landmarks = any(i.name == "landmarks_2d" for i in self.session.get_inputs())

    def __call__(self, image: np.ndarray, K: np.ndarray | None = None, landmarks_2d: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
        """image (B, 3, 128, 128) float32, normalised[, K (B, 3, 3) the crops' intrinsics, for a refined network]
        [, landmarks_2d (B, 21, 2) in [0, 1] of the crops, for a network that pools at given landmarks]
        → {"verts" (B, V, 3), "joints_2d" (B, 21, 2)[, "joints3d"][, "verts_cam", "joints_cam"]}."""
        feed = {"image": np.ascontiguousarray(image, np.float32)}
        if self.takes_landmarks:
            if landmarks_2d is None:
                raise ValueError("this hand-mesh network pools at given landmarks: give landmarks_2d")
            feed["landmarks_2d"] = np.ascontiguousarray(landmarks_2d, np.float32)
        if self.takes_K:
            if K is None:
                raise ValueError("this hand-mesh network is refined: give the crops' intrinsics K")
            feed["K"] = np.ascontiguousarray(K, np.float32)
        res = self.session.run(self.outputs, feed)
        return dict(zip(self.outputs, res))
