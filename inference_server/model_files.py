"""Finding and reading the user's licensed body-model files (SMPL, SMPL-H, SMPL-X, MANO). No bpy, no torch.

The files are never shipped or downloaded by Reel2Rig: the user registers on the models' sites, downloads them, and
points the engine at the folder (add-on preferences › "Model files", or ``--model-dir`` on the command line).

Both official formats load:

* ``.npz`` — read with ``allow_pickle=False`` (only the numeric arrays the model needs are touched, so the object
  arrays some SMPL-X files carry, such as ``joint2num``, are never unpickled);
* ``.pkl`` — the original Python-2 pickles, whose ``shapedirs`` is a ``chumpy`` array and whose ``J_regressor`` is a
  ``scipy.sparse`` matrix. They load **without chumpy and without running arbitrary pickle code**: a restricted
  unpickler resolves only numpy's array reconstruction, ``set``/``object``, chumpy's ``Ch`` and scipy's sparse
  matrix classes — the last two as inert stand-ins that only collect their stored arrays — and refuses anything else,
  naming it. (``_codecs.encode`` is allowed too: Python 3 pickles bytes through it.)

Every failure is an :class:`RpcError` (``MODEL_MISSING``) whose message names the file expected, where it comes from
and where to put it.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import MODEL_MISSING, RpcError

# Model type → (display name, download page, file names tried in order of preference; {G} = gender).
MODEL_SOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "smpl": ("SMPL", "https://smpl.is.tue.mpg.de",
             ("SMPL_{G}.pkl", "SMPL_{G}.npz", "basicmodel_{g1}_lbs_10_207_0_v1.1.0.pkl",
              "basicModel_{g1}_lbs_10_207_0_v1.0.0.pkl")),
    "smplh": ("SMPL-H", "https://mano.is.tue.mpg.de (the SMPL+H model)",
              ("SMPLH_{G}.pkl", "SMPLH_{G}.npz")),
    "smplx": ("SMPL-X", "https://smpl-x.is.tue.mpg.de",
              ("SMPLX_{G}.npz", "SMPLX_{G}.pkl")),
    "mano": ("MANO", "https://mano.is.tue.mpg.de",
             ("MANO_{S}.pkl", "MANO_{S}.npz")),
}
GENDERS = ("neutral", "male", "female")

# Arrays each model type needs, with their shapes (V vertices, J joints, S shape components; ints are exact).
REQUIRED: dict[str, dict[str, tuple[Any, ...]]] = {
    "smpl": {"v_template": ("V", 3), "shapedirs": ("V", 3, "S"), "J_regressor": ("J", "V"),
             "weights": ("V", "J"), "kintree_table": (2, "J"), "f": (None, 3), "posedirs": ("V", 3, None)},
}
REQUIRED["smplh"] = dict(REQUIRED["smpl"], hands_componentsl=(45, 45), hands_componentsr=(45, 45),
                         hands_meanl=(45,), hands_meanr=(45,))
REQUIRED["smplx"] = dict(REQUIRED["smplh"], lmk_faces_idx=(None,), lmk_bary_coords=(None, 3))
REQUIRED["mano"] = dict(REQUIRED["smpl"], hands_components=(45, 45), hands_mean=(45,))
JOINT_COUNTS = {"smpl": 24, "smplh": 52, "smplx": 55, "mano": 16}


def _missing(model_type: str, model_dir: Path | None, looked: list[Path], detail: str = "") -> RpcError:
    display, page, names = MODEL_SOURCES[model_type]
    where = f"in {model_dir} and {model_dir}/{model_type}/" if model_dir else "(no model folder is set)"
    tried = ", ".join(sorted({p.name for p in looked})) or names[0]
    return RpcError(
        MODEL_MISSING,
        f"the {display} model file was not found {where}: looked for {tried}{detail}",
        fix=(f"download {display} from {page} (free registration, research licence), then put the file in "
             f"{(model_dir / model_type) if model_dir else '<model folder>/' + model_type}/ and set that folder "
             "as the model folder (add-on preferences › Model files, or --model-dir); or use the Anny model, "
             "which needs no download"))


def find_model_file(model_type: str, model_dir: str | Path | None, gender: str = "neutral",
                    side: str = "right") -> Path:
    """The user's file for a model type: ``model_dir`` and ``model_dir/<type>/`` are searched for the official
    names (the asked gender first, then the others). Raises MODEL_MISSING naming what was looked for."""
    if model_type not in MODEL_SOURCES:
        raise RpcError(MODEL_MISSING, f"unknown model type {model_type!r}",
                       fix=f"use one of {', '.join(sorted(MODEL_SOURCES))} (or anny)")
    folder = Path(model_dir).expanduser() if model_dir else None
    if folder is None:
        raise _missing(model_type, None, [])
    if not folder.is_dir():
        raise RpcError(MODEL_MISSING, f"the model folder {folder} does not exist",
                       fix="set the model folder to the directory holding your SMPL/SMPL-H/SMPL-X/MANO downloads")
    genders = [gender] + [g for g in GENDERS if g != gender]
    looked: list[Path] = []
    for g in genders:
        g1 = {"neutral": "neutral", "male": "m", "female": "f"}[g]
        for pattern in MODEL_SOURCES[model_type][2]:
            name = pattern.format(G=g.upper(), g1=g1, S=side.upper())
            for base in (folder / model_type, folder):
                candidate = base / name
                looked.append(candidate)
                if candidate.is_file():
                    return candidate
    raise _missing(model_type, folder, looked)


# --- the restricted unpickler ---------------------------------------------------------------------------------

class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the stored state; its value is the state's ``x`` array."""

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        x = self.state.get("x") if isinstance(getattr(self, "state", None), dict) else None
        if x is None:
            raise ValueError("a chumpy array without a value ('x')")
        return np.asarray(x)


class _SparseMatrix:
    """Stand-in for ``scipy.sparse`` CSC/CSR matrices: keeps the stored arrays, densifies on request."""

    fmt = "csc"

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        import scipy.sparse as sp

        s = self.state
        shape = tuple(s.get("_shape") or s.get("shape"))
        cls = sp.csc_matrix if self.fmt == "csc" else sp.csr_matrix
        return np.asarray(cls((np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])),
                              shape=shape).toarray())


class _CsrMatrix(_SparseMatrix):
    fmt = "csr"


_NUMPY_OK = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
             ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
             ("numpy", "ndarray"), ("numpy", "dtype")}
_BUILTINS_OK = {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
                ("builtins", "object"), ("__builtin__", "set"), ("builtins", "set"), ("_codecs", "encode")}
_STAND_INS = {("chumpy.ch", "Ch"): _ChumpyArray,
              ("scipy.sparse.csc", "csc_matrix"): _SparseMatrix, ("scipy.sparse._csc", "csc_matrix"): _SparseMatrix,
              ("scipy.sparse.csr", "csr_matrix"): _CsrMatrix, ("scipy.sparse._csr", "csr_matrix"): _CsrMatrix}


class _ModelUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in _STAND_INS:
            return _STAND_INS[key]
        if key in _NUMPY_OK:
            import importlib

            return getattr(importlib.import_module(module.replace("numpy._core", "numpy.core")), name)
        if key in _BUILTINS_OK:
            import _codecs
            import builtins
            import copyreg

            return {"_reconstructor": copyreg._reconstructor, "object": builtins.object, "set": builtins.set,
                    "encode": _codecs.encode}[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a body-model file)")


def _plain(value: Any) -> Any:
    if isinstance(value, (_ChumpyArray, _SparseMatrix)):
        return value.array()
    return value


def _read_pkl(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = _ModelUnpickler(io.BufferedReader(fh), encoding="latin1").load()  # type: ignore[arg-type]
    if not isinstance(data, dict):
        raise ValueError(f"holds a {type(data).__name__}, not a dictionary of arrays")
    return {str(k): _plain(v) for k, v in data.items()}


def _read_npz(path: Path, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in keys:
            if key in z.files:
                out[key] = z[key]
    return out


def read_model_file(path: str | Path, model_type: str) -> dict[str, np.ndarray]:
    """The arrays of a model file (``.npz`` or ``.pkl``), checked against what the model type needs.

    Raises MODEL_MISSING naming the file and the problem (unreadable, refused pickle content, a missing array, a
    wrong shape)."""
    path = Path(path)
    display, page, _ = MODEL_SOURCES[model_type]
    need = REQUIRED[model_type]
    fix = (f"use the official {display} file from {page} (.npz or .pkl), unchanged; "
           "or use the Anny model, which needs no download")
    if not path.is_file():
        raise RpcError(MODEL_MISSING, f"{path} does not exist", fix=fix)
    try:
        if path.suffix == ".npz":
            raw = _read_npz(path, list(need))
        elif path.suffix == ".pkl":
            raw = _read_pkl(path)
        else:
            raise ValueError("the name ends in neither .npz nor .pkl")
    except (pickle.UnpicklingError, ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError, TypeError,
            AttributeError, IndexError) as exc:
        raise RpcError(MODEL_MISSING, f"{path} is not a readable {display} model file ({exc})", fix=fix) from exc
    data: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    for key, shape in need.items():
        if key not in raw:
            raise RpcError(MODEL_MISSING, f"{path} is not a {display} model file: it has no '{key}' array", fix=fix)
        try:
            arr = np.asarray(raw[key])
        except Exception as exc:  # noqa: BLE001 - anything a stand-in could not turn into an array
            raise RpcError(MODEL_MISSING, f"{path}: '{key}' is not an array ({exc})", fix=fix) from exc
        if arr.dtype == object or arr.ndim != len(shape):
            raise RpcError(MODEL_MISSING, f"{path}: '{key}' has shape {arr.shape}, expected {shape}", fix=fix)
        for dim, want in zip(arr.shape, shape):
            if isinstance(want, int) and dim != want:
                raise RpcError(MODEL_MISSING, f"{path}: '{key}' has shape {arr.shape}, expected {shape}", fix=fix)
            if isinstance(want, str):
                if sizes.setdefault(want, dim) != dim:
                    raise RpcError(MODEL_MISSING, f"{path}: '{key}' has shape {arr.shape}, but {want} = "
                                   f"{sizes[want]} elsewhere in the file", fix=fix)
        data[key] = arr
    if sizes["J"] != JOINT_COUNTS[model_type]:
        raise RpcError(MODEL_MISSING, f"{path} has {sizes['J']} joints; a {display} model has "
                       f"{JOINT_COUNTS[model_type]} (is it a different model type?)", fix=fix)
    return data
