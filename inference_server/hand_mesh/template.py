"""The hand template the mesh network predicts, and its hierarchy. No bpy; torch only through Anny's first build.

* **Anny** (default, built in): Anny's right hand (the skin of the wrist and finger bones, 1,596 vertices, open at
  the wrist) decimated by ``hierarchy.decimate`` to **778 vertices**, MANO's count, so that the network has the
  paper's size. Decimation keeps a subset of Anny's own vertices (``anny_vertex``), so the template poses with
  Anny's skinning and the training data's ground truth is Anny's own mesh at those vertices.
* **MANO** (the user's ``MANO_RIGHT`` file, ``model_files``): its 778-vertex ``v_template`` as it is.

Left hands are mirrored crops of right hands (the network sees only right hands; the caller un-mirrors).
The template and its hierarchy are built once and cached as a small ``.npz`` in the stage cache.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .hierarchy import MeshHierarchy, build_hierarchy, decimate

TEMPLATE_VERSION = 1
MANO_SIZE = 778


@dataclasses.dataclass(frozen=True, eq=False)
class HandTemplate:
    name: str                      # "anny" or "mano"
    hierarchy: MeshHierarchy       # level 0 is the template itself
    anny_vertex: np.ndarray | None  # (778,) index into Anny's whole-body mesh (Anny templates only)

    @property
    def vertices(self) -> np.ndarray:
        return self.hierarchy.vertices[0]

    @property
    def faces(self) -> np.ndarray:
        return self.hierarchy.faces[0]


def _anny_hand_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anny's right-hand skin: (vertices (V, 3) m, faces (F, 3), index of each vertex in Anny's whole mesh)."""
    from scipy.spatial import cKDTree

    from ..anny_mesh import load_mesh, take_mesh_arrays
    from ..anny_skeleton import load_skeleton
    from ..body_models import hand_bones

    skel = load_skeleton()
    bones = hand_bones(list(skel.names), skel.parents, "right")
    hand = take_mesh_arrays([skel.names[j] for j in bones])
    if hand is None:
        raise RuntimeError("Anny's skeleton has no right hand")
    whole = load_mesh().rest_vertices
    dist, ids = cKDTree(whole).query(hand["vertices"])
    if dist.max() > 1e-7:
        raise RuntimeError("the hand's vertices are not Anny's own")
    return hand["vertices"].astype(np.float64), hand["faces"].astype(np.int64), ids.astype(np.int64)


def _build_anny() -> dict[str, np.ndarray]:
    V, F, ids = _anny_hand_mesh()
    keep, faces = decimate(V, F, MANO_SIZE)
    h = build_hierarchy(V[keep], faces)
    return dict(h.to_arrays(), anny_vertex=ids[keep])


def anny_template() -> HandTemplate:
    """The default template (cached; the first build takes a few seconds)."""
    from ..config import prepare_environment, stage_cache_dir
    from ..npz_cache import load_or_build, versioned_path

    prepare_environment()
    data = load_or_build(versioned_path(stage_cache_dir(), "hand_template", TEMPLATE_VERSION), _build_anny,
                         lambda d: MeshHierarchy.from_arrays(d))
    return HandTemplate("anny", MeshHierarchy.from_arrays(data), data["anny_vertex"].astype(np.int64))


def mano_template(model_dir: str | Path | None) -> HandTemplate:
    """The user's MANO right hand as the template (raises MODEL_MISSING naming the file when it is not there)."""
    from ..model_files import find_model_file, read_model_file

    data = read_model_file(find_model_file("mano", model_dir, side="right"), "mano")
    return HandTemplate("mano", build_hierarchy(np.asarray(data["v_template"], dtype=np.float64),
                                                np.asarray(data["f"], dtype=np.int64)), None)


def load_template(name: str = "anny", model_dir: str | Path | None = None) -> HandTemplate:
    if name == "anny":
        return anny_template()
    if name == "mano":
        return mano_template(model_dir)
    raise ValueError(f"unknown hand template {name!r} (anny or mano)")
