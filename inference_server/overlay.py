"""Pictures for checking a Take against its footage: the fitted body drawn over the frames. No bpy, no GPU.

``python -m inference_server overlay TAKE [--out sheet.png] [--video CLIP] [--no-mesh]``: a contact sheet of
evenly spaced frames of the Take's clip (``--video``: where the clip is now, if it moved since the capture). On each
frame, first the fitted mesh — Anny's, or the user's SMPL-family / MANO model when its file is still where the
capture found it — as one semi-transparent light grey-blue surface (:func:`take_mesh`, :func:`draw_mesh`), then the
fitted bones in colour (subject's left = blue, right = orange) and the detector's landmarks as small white dots on
top.

The mesh is posed only for the rows drawn (never the whole clip). torch is imported only for SMPL-family models
(``smplx`` runs on the CPU); Anny's mesh is skinned in numpy.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .take import Take, read_take
from .video import iter_frames

log = logging.getLogger("reel2rig.overlay")

LEFT_BGR = (255, 140, 40)
RIGHT_BGR = (40, 140, 255)
CENTRE_BGR = (90, 220, 90)
MESH_BGR = (225, 200, 175)   # light grey-blue
MESH_ALPHA = 0.45
SMPL_FAMILY = ("smpl", "smplh", "smplx", "mano")
HAND_ROOTS = ("wrist.L", "wrist.R", "left_wrist", "right_wrist")   # Anny's and the SMPL family's wrists

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def project(take: Take, points_world: np.ndarray, frame: int) -> np.ndarray:
    """(N,3) world points of frame index `frame` (Take row) → (N,2) pixels."""
    R, t, K = take["R_world2cam"][frame], take["t_world2cam"][frame], take["K"]
    cam = points_world @ R.T + t
    uv = cam @ K.T
    return uv[:, :2] / np.maximum(uv[:, 2:3], 1e-6)


# --- the fitted mesh -----------------------------------------------------------------------------------------------

def take_mesh(take: Take, rows) -> tuple[np.ndarray, np.ndarray] | None:
    """The Take's fitted mesh on the given rows: (len(rows), V, 3) float32 camera-space vertices (OpenCV axes,
    metres) and (F, 3) int faces (counter-clockwise seen from outside), or None when the Take's model has no mesh
    here (an unknown model, an Anny skeleton other than the installed one, a SMPL-family file that moved). A
    hands-only Take (sidecar ``hands_only``) keeps only the hands' faces: the body was not fitted there.

    Anny: the cached mesh skinned (``anny_mesh.skin``) by the Take's forward kinematics. SMPL family / MANO: the
    user's model file evaluated by ``smplx`` with the Take's ``model_pose_aa``, ``shape`` and root position.
    """
    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    model = str(take.meta.get("model", ""))
    if model == "anny":
        world = _anny_world(take, rows)
    elif model in ("anny_hand_left", "anny_hand_right"):
        world = _anny_hand_world(take, rows, model.rsplit("_", 1)[1])
    elif model.split("_")[0] in SMPL_FAMILY:
        world = _smpl_world(take, rows)
    else:
        return None
    if world is None:
        return None
    vertices, faces = world
    cam = (np.einsum("tij,tvj->tvi", take["R_world2cam"][rows].astype(np.float64), vertices)
           + take["t_world2cam"][rows].astype(np.float64)[:, None])
    return cam.astype(np.float32), np.asarray(faces, dtype=np.int64)


def _hand_faces(faces: np.ndarray, weights: np.ndarray, names: list[str], parents: np.ndarray) -> np.ndarray:
    """(F,) bool: the faces all of whose vertices are skinned mostly (> 1/2) to a wrist or a bone below one."""
    hand = np.zeros(len(names), dtype=bool)
    for j, (name, parent) in enumerate(zip(names, parents)):   # parents come first
        hand[j] = name in HAND_ROOTS or (parent >= 0 and hand[parent])
    on_hand = weights[:, hand].sum(axis=1) > 0.5
    return on_hand[faces].all(axis=1)


def _take_phenotype(take: Take) -> np.ndarray | None:
    """The Anny phenotype an Anny Take was fitted with (its ``shape``: an actor's height gives a non-default one)."""
    from .anny_skeleton import shape_phenotype

    return shape_phenotype(take.arrays.get("shape"))


def _anny_world(take: Take, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Anny: (n,V,3) world vertices and faces, or None when the Take's bones are not the installed skeleton's."""
    from rigs.fk import forward_kinematics

    from .anny_mesh import dense_weights, load_mesh, skin
    from .anny_skeleton import load_skeleton

    phenotype = _take_phenotype(take)
    skel = load_skeleton(phenotype)
    if take.bone_names != list(skel.names):
        _warn_once(f"anny-bones:{take.path}", f"{take.path}: the Take's bones are not the installed Anny "
                                              "skeleton's; overlay without the mesh")
        return None
    # The Take's own rest for the pose (so the mesh follows its joints_world), Anny's rest for the binding.
    W = forward_kinematics(take["rest_matrices"].astype(np.float64), take["bone_parents"],
                           take["local_rotations_aa"][rows].astype(np.float64),
                           take["root_position_world"][rows].astype(np.float64))
    mesh = load_mesh(phenotype)
    faces = mesh.faces
    if take.meta.get("hands_only"):   # only the hands were fitted: the rest of the body is not on the person
        faces = faces[_hand_faces(faces, dense_weights(mesh, len(skel.names)), skel.names, skel.parents)]
    return skin(mesh, skel.rest, W).astype(np.float64), faces


def _anny_hand_world(take: Take, rows: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Anny's hand alone (a hand model's Take of one hand): the mesh's faces of that hand, skinned by the Take's
    hand bones; every other bone follows the wrist rigidly, so the hand's skin near the wrist stays whole."""
    from rigs.fk import forward_kinematics, rigid_inverse

    from .anny_mesh import dense_weights, load_mesh, skin
    from .anny_skeleton import load_skeleton
    from .body_models import hand_bones

    phenotype = _take_phenotype(take)
    skel = load_skeleton(phenotype)
    keep = hand_bones(skel.names, skel.parents, side)
    if take.bone_names != [skel.names[j] for j in keep]:
        _warn_once(f"anny-hand-bones:{take.path}", f"{take.path}: the Take's bones are not the installed Anny "
                                                   f"skeleton's {side} hand; overlay without the mesh")
        return None
    W_hand = forward_kinematics(take["rest_matrices"].astype(np.float64), take["bone_parents"],
                                take["local_rotations_aa"][rows].astype(np.float64),
                                take["root_position_world"][rows].astype(np.float64))   # (n, Jh, 4, 4)
    follow = W_hand[:, 0] @ rigid_inverse(skel.rest[keep[0]])                          # the wrist's move
    W = follow[:, None] @ skel.rest[None]
    W[:, keep] = W_hand
    mesh = load_mesh(phenotype)
    on_hand = dense_weights(mesh, len(skel.names))[:, keep].sum(axis=1) > 0.5
    faces = mesh.faces[on_hand[mesh.faces].all(axis=1)]
    return skin(mesh, skel.rest, W).astype(np.float64), faces


def _smpl_world(take: Take, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """SMPL, SMPL-H, SMPL-X or MANO: (n,V,3) world vertices and faces from the model file named in the sidecar."""
    from .body_models import SmplModel

    name = str(take.meta["model"])
    info = take.meta.get("model_info") or {}
    path = Path(str(info.get("file", "")))
    if not info.get("file") or not path.is_file():
        _warn_once(f"file:{path}", f"{take.path}: the {name} model file {str(path) or '(not named)'} is not there; "
                                   "overlay without the mesh")
        return None
    if "model_pose_aa" not in take.arrays or "shape" not in take.arrays:
        _warn_once(f"pose:{take.path}", f"{take.path}: no model_pose_aa/shape in the Take; overlay without the mesh")
        return None
    model_type = name.split("_")[0]
    side = "left" if name.endswith("_left") else "right"
    try:
        model = SmplModel(model_type, path, side=side)
    except Exception as exc:  # a file replaced by something else since the capture (RpcError, OSError, ...)
        _warn_once(f"file:{path}", f"{take.path}: cannot read the {name} model file {path} ({exc}); "
                                   "overlay without the mesh")
        return None
    pose = take["model_pose_aa"][rows].astype(np.float64)
    shape = take["shape"].astype(np.float64)
    if pose.shape[1] != len(model.names) or shape.shape[0] != len(model.shape_names):
        _warn_once(f"fit:{take.path}", f"{take.path}: its pose/shape do not fit {path}; overlay without the mesh")
        return None
    vertices = smpl_vertices(model, pose, shape, take["root_position_world"][rows].astype(np.float64))
    faces = np.asarray(model.smplx_module().faces, dtype=np.int64)
    if take.meta.get("hands_only") and model.kind == "body":
        faces = faces[_hand_faces(faces, np.asarray(model.data["weights"], dtype=np.float64), model.names,
                                  model.parents)]
    return vertices, faces


def smpl_vertices(model, model_pose: np.ndarray, shape: np.ndarray, root_world: np.ndarray) -> np.ndarray:
    """Vertices (T,V,3) in the Take's world of a ``body_models.SmplModel`` posed by its own library: model pose
    (T,J,3), shape (betas), the root joint's world position (T,3). The same call as ``SmplModel.reference_joints``
    (same ``transl``, same axis change ``SMPL_TO_TAKE``), keeping ``out.vertices``."""
    import torch

    from .body_models import SMPL_TO_TAKE

    p = np.asarray(model_pose, dtype=np.float64)
    T = p.shape[0]
    m = model.smplx_module()
    f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    kwargs = dict(betas=f32(np.broadcast_to(shape, (T, len(model.shape_names)))),
                  global_orient=f32(p[:, 0]), transl=f32(model.transl(root_world, shape)))
    if model.model_type == "smpl":
        kwargs.update(body_pose=f32(p[:, 1:].reshape(T, -1)))
    elif model.model_type == "smplh":
        kwargs.update(body_pose=f32(p[:, 1:22].reshape(T, -1)), left_hand_pose=f32(p[:, 22:37].reshape(T, -1)),
                      right_hand_pose=f32(p[:, 37:52].reshape(T, -1)))
    elif model.model_type == "smplx":
        kwargs.update(body_pose=f32(p[:, 1:22].reshape(T, -1)), jaw_pose=f32(p[:, 22]), leye_pose=f32(p[:, 23]),
                      reye_pose=f32(p[:, 24]), left_hand_pose=f32(p[:, 25:40].reshape(T, -1)),
                      right_hand_pose=f32(p[:, 40:55].reshape(T, -1)), expression=torch.zeros(T, 10))
    else:
        kwargs.update(hand_pose=f32(p[:, 1:].reshape(T, -1)))
    with torch.no_grad():
        out = m(**kwargs)
    return out.vertices.double().numpy() @ SMPL_TO_TAKE.T


# --- drawing -------------------------------------------------------------------------------------------------------

def draw_mesh(image: np.ndarray, vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray,
              colour: tuple[int, int, int], alpha: float = MESH_ALPHA, near: float = 1e-3) -> int:
    """Blend a shaded mesh into `image` (in place). vertices_cam (V,3), faces (F,3), K (3,3) for this image.

    Painter's algorithm over the faces that face the camera (normal · view < 0, computed in 3D so it does not
    depend on the image's handedness), far → near, into an opaque layer that is then blended at `alpha` (so the
    surface has one uniform transparency). Shade = colour · (0.35 + 0.65 |cos θ|). Returns the faces drawn.
    """
    import cv2

    h, w = image.shape[:2]
    v = np.asarray(vertices_cam, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]                                                        # (F, 3, 3)
    ok = np.isfinite(tri).all(axis=(1, 2)) & (tri[:, :, 2] > near).all(axis=1)
    tri, f = tri[ok], f[ok]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])   # outward for counter-clockwise faces
    centre = tri.mean(axis=1)                                         # view ray from the camera at the origin
    facing = -np.einsum("fi,fi->f", normal, centre)                   # > 0: the face looks at the camera
    keep = facing > 0
    tri, normal, centre, facing = tri[keep], normal[keep], centre[keep], facing[keep]
    if not len(tri):
        return 0
    cos = facing / np.maximum(np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1), 1e-12)
    uvw = tri @ np.asarray(K, dtype=np.float64).T                     # (F, 3, 3)
    uv = uvw[..., :2] / uvw[..., 2:3]                                 # (F, 3, 2) pixels
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    inside = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < w) & (lo[:, 1] < h)
    uv, cos, depth = uv[inside], cos[inside], centre[inside, 2]
    if not len(uv):
        return 0
    order = np.argsort(-depth, kind="stable")                         # far → near
    shift = 2                                                         # 1/4-pixel vertex precision
    pts = np.round(np.clip(uv[order], -1e5, 1e5) * (1 << shift)).astype(np.int32)  # (F, 3, 2)
    shade = 0.35 + 0.65 * np.clip(cos[order], 0.0, 1.0)
    colours = (np.asarray(colour, dtype=np.float64)[None] * shade[:, None]).round().astype(int).tolist()
    layer = np.zeros_like(image)
    mask = np.zeros((h, w), dtype=np.uint8)
    for p, c in zip(pts, colours):
        cv2.fillConvexPoly(layer, p, c, cv2.LINE_8, shift)
        cv2.fillConvexPoly(mask, p, 255, cv2.LINE_8, shift)
    covered = mask > 0
    image[covered] = (image[covered] * (1.0 - alpha) + layer[covered] * alpha).round().astype(np.uint8)
    return len(pts)


def draw_marks(take: Take, row: int, image: np.ndarray) -> None:
    """The fitted bones and the detector's landmarks of Take row `row`, drawn into `image` (in place)."""
    import cv2

    names = take.bone_names
    parents = take["bone_parents"]
    heads = project(take, take["joints_world"][row].astype(np.float64), row)
    scale = max(1, round(max(image.shape[:2]) / 640))
    for side, hand in enumerate(take["hand_landmarks_2d"][row]):
        for x, y, _ in hand:
            if np.isfinite(x):
                cv2.circle(image, (int(x), int(y)), scale, (255, 255, 255), -1, cv2.LINE_AA)
    for x, y, v in take["pose_landmarks_2d"][row]:
        if np.isfinite(x) and v > 0.3:
            cv2.circle(image, (int(x), int(y)), 2 * scale, (255, 255, 255), -1, cv2.LINE_AA)
    for j, p in enumerate(parents):
        if p < 0 or names[j].startswith(("eye", "toe")) or names[p] == "root":
            continue
        colour = (LEFT_BGR if names[j].endswith(".L") or names[j].startswith("left_") else   # Anny, SMPL family
                  RIGHT_BGR if names[j].endswith(".R") or names[j].startswith("right_") else CENTRE_BGR)
        a, b = heads[p], heads[j]
        if np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
            cv2.line(image, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, scale, cv2.LINE_AA)


def draw(take: Take, row: int, image: np.ndarray,
         mesh: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A copy of `image` with Take row `row` drawn on it: ``mesh`` (this row's (V,3) camera-space vertices and the
    faces, e.g. from :func:`take_mesh`) first when given and the person was seen, then bones and landmarks."""
    img = image.copy()
    if mesh is not None and bool(take["valid"][row]):
        draw_mesh(img, mesh[0], mesh[1], take["K"], MESH_BGR)
    draw_marks(take, row, img)
    return img


def label_person(take: Take, row: int, image: np.ndarray, text: str) -> None:
    """Write ``text`` (the person's number) above the person's nose landmark, when it was seen on this row."""
    import cv2

    x, y, _ = take["pose_landmarks_2d"][row][0]
    if np.isfinite(x) and bool(take["valid"][row]):
        scale = max(1, round(max(image.shape[:2]) / 640))
        cv2.putText(image, text, (int(x) - 8 * scale, int(y) - 30 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                    (255, 255, 255), 2 * scale, cv2.LINE_AA)


def contact_sheet(take_path: str | Path, out_png: str | Path, video: str | Path | None = None,
                  count: int = 6, width: int = 960, others: list[str | Path] | None = None,
                  mesh: bool = True) -> Path:
    """Evenly spaced overlay frames tiled into one PNG (≤ `width` px wide). Streams the video once. ``others``:
    the Takes of the other people of a multi-person capture, drawn on the same frames and numbered from 2.
    ``mesh``: draw each person's fitted mesh under the skeletons (posed only on the frames shown)."""
    import cv2

    take = read_take(take_path)
    people = [take] + [read_take(p) for p in others or []]
    video = Path(video or take.meta["source"]["path"])
    rows = np.linspace(0, take.n_frames - 1, min(count, take.n_frames)).round().astype(int)
    wanted = {int(take["frame_ids"][r]): int(r) for r in rows}
    shown = np.array(sorted(set(wanted.values())))
    meshes = [take_mesh(person, shown) if mesh else None for person in people]
    tiles = []
    for index, _ts, frame in iter_frames(video, 0, int(max(wanted)) + 1):
        if index in wanted:
            row = wanted[index]
            k = int(np.searchsorted(shown, row))
            tile = frame.copy()
            for person, posed in zip(people, meshes):   # every mesh first, so no mesh veils a skeleton
                if posed is not None and bool(person["valid"][row]):
                    draw_mesh(tile, posed[0][k], posed[1], person["K"], MESH_BGR)
            for number, person in enumerate(people, start=1):
                draw_marks(person, row, tile)
                if len(people) > 1 and number > 1:
                    label_person(person, row, tile, str(number))
            if len(people) > 1:
                label_person(take, row, tile, "1")
            cv2.putText(tile, f"frame {index}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
            tiles.append(tile)
    cols = 3 if len(tiles) > 4 else len(tiles)
    h, w = tiles[0].shape[:2]
    tile_w = width // cols
    tile_h = round(h * tile_w / w)
    tiles = [cv2.resize(t, (tile_w, tile_h), interpolation=cv2.INTER_AREA) for t in tiles]
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError(f"could not encode {out_png}")
    from .take import atomic_write_bytes

    atomic_write_bytes(out_png, data.tobytes())
    return out_png
