"""The overlay's fitted mesh (inference_server.overlay): posed on the Take's rows, drawn under the skeleton, on
the person. Anny Takes use the real cached Anny mesh; the SMPL family a synthetic model file
(tests/synthetic_models.py). Takes with a known pose are written here, drawn on black frames.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from inference_server.anny_skeleton import anny_available

pytestmark = pytest.mark.skipif(not anny_available(), reason="the Anny model cache is not built (./reel2rig setup)")

cv2 = pytest.importorskip("cv2")

WIDTH, HEIGHT = 640, 480
K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
WORLD2CAM = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # camera at −Y looking +Y, Z up


def _camera(n: int, centre=(0.0, -3.5, 0.05)) -> tuple[np.ndarray, np.ndarray]:
    R = np.repeat(WORLD2CAM[None], n, 0)
    return R, np.repeat((-WORLD2CAM @ np.asarray(centre))[None], n, 0)


def _arrays(names, parents, rest, lengths, local, root, joints) -> dict:
    n, J = local.shape[:2]
    R, t = _camera(n)
    return dict(
        frame_ids=np.arange(n), timestamps=np.arange(n) / 30.0, fps=np.array(30.0),
        image_size=np.array([WIDTH, HEIGHT]), K=K, R_world2cam=R, t_world2cam=t,
        bone_names=np.array(names), bone_parents=np.asarray(parents), rest_matrices=rest, bone_lengths=lengths,
        local_rotations_aa=local, root_position_world=root, joints_world=joints,
        bone_fitted=np.ones((n, J), bool), valid=np.ones(n, bool), fit_residual_px=np.zeros(n),
        pose_landmarks_2d=np.full((n, 33, 3), np.nan), pose_landmarks_world=np.full((n, 33, 3), np.nan),
        hand_landmarks_2d=np.full((n, 2, 21, 3), np.nan))


def _clip(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for _ in range(n):
        writer.write(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def skeleton():
    from inference_server.anny_skeleton import load_skeleton

    return load_skeleton()


def _anny_take(folder: Path, skeleton, name: str = "anny", shift=(0.0, 0.0, 0.0), clip: Path | None = None):
    """Three rows: Anny's rest pose; the right arm swung away (its wrist moves far); the rest pose again, moved
    0.3 m to the subject's left (+X)."""
    from inference_server.take import read_take, write_take
    from rigs.fk import bone_heads

    J = len(skeleton.names)
    local = np.zeros((3, J, 3))
    local[1, skeleton.index("upperarm01.R")] = [0.0, 0.0, -1.3]
    local[1, skeleton.index("lowerarm01.R")] = [0.9, 0.0, 0.0]
    root = np.repeat(skeleton.rest[0, :3, 3][None], 3, 0) + np.asarray(shift)
    root[2, 0] += 0.3
    joints = bone_heads(skeleton.rest, skeleton.parents, local, root)
    arrays = _arrays(skeleton.names, skeleton.parents, skeleton.rest, skeleton.lengths, local, root, joints)
    meta = {"model": "anny", "source": {"path": str(clip or folder / "none.mp4")}}
    return read_take(write_take(folder / f"{name}.take.npz", arrays, meta))


def _pixels(take, names, row):
    from inference_server.overlay import project

    idx = [take.bone_names.index(n) for n in names]
    return project(take, take["joints_world"][row][idx].astype(np.float64), row)


def _mesh_mask(take, row) -> np.ndarray:
    from inference_server.overlay import MESH_BGR, draw_mesh, take_mesh

    verts, faces = take_mesh(take, [row])
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    assert draw_mesh(image, verts[0], faces, take["K"], MESH_BGR) > 1000
    return image.any(axis=2)


def test_anny_mesh_covers_the_body_and_only_the_body(tmp_path, skeleton):
    from inference_server.overlay import take_mesh

    take = _anny_take(tmp_path, skeleton)
    verts, faces = take_mesh(take, [0, 1, 2])
    assert verts.shape == (3, 13718, 3) and verts.dtype == np.float32 and faces.shape == (27420, 3)
    assert np.isfinite(verts).all()
    # only the rows asked for are posed: row 1 alone equals row 1 of the three
    np.testing.assert_allclose(take_mesh(take, [1])[0][0], verts[1], atol=1e-6)

    mask = _mesh_mask(take, 0)
    centre = ["pelvis.L", "pelvis.R", "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "head",
              "upperleg01.L", "upperleg01.R"]
    for (u, v), name in zip(_pixels(take, centre, 0), centre):
        assert mask[int(round(v)), int(round(u))], f"the mesh does not cover {name}"
    # every covered pixel lies near the projected skeleton's box (a few cm of flesh past the bone heads)
    uv = _pixels(take, take.bone_names, 0)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    margin = 0.12 * (hi[1] - lo[1])
    ys, xs = np.nonzero(mask)
    assert xs.min() >= lo[0] - margin and xs.max() <= hi[0] + margin
    assert ys.min() >= lo[1] - margin and ys.max() <= hi[1] + margin
    # a body, not a box nor a stick: a plausible part of the skeleton's box, and a plausible height on screen
    box = (hi[0] - lo[0]) * (hi[1] - lo[1])
    assert 0.15 < mask.sum() / box < 0.75, mask.sum() / box
    assert (ys.max() - ys.min()) > 0.9 * (hi[1] - lo[1])


def test_anny_mesh_follows_each_rows_pose(tmp_path, skeleton):
    take = _anny_take(tmp_path, skeleton)
    wrist = ["wrist.R"]
    at_rest, swung = _pixels(take, wrist, 0)[0], _pixels(take, wrist, 1)[0]
    assert np.linalg.norm(swung - at_rest) > 40  # the pose moves the hand far on screen
    rest_mask, swung_mask = _mesh_mask(take, 0), _mesh_mask(take, 1)
    assert swung_mask[int(round(swung[1])), int(round(swung[0]))]
    assert not swung_mask[int(round(at_rest[1])), int(round(at_rest[0]))]
    assert rest_mask[int(round(at_rest[1])), int(round(at_rest[0]))]
    # row 2: the same body moved 0.3 m sideways → the mask moves by 0.3 / 3.5 · 500 ≈ 43 px
    shift = np.nonzero(_mesh_mask(take, 2))[1].mean() - np.nonzero(rest_mask)[1].mean()
    assert abs(shift - 0.3 / 3.5 * 500) < 3


def test_draw_puts_the_skeleton_over_the_mesh(tmp_path, skeleton):
    from inference_server.overlay import draw, take_mesh

    take = _anny_take(tmp_path, skeleton)
    verts, faces = take_mesh(take, [0])
    black = np.zeros((3 * HEIGHT, 3 * WIDTH, 3), np.uint8)  # a large frame: 3 px lines, solid in their middle
    bare = draw(take, 0, black)
    dressed = draw(take, 0, black, (verts[0], faces))
    assert not black.any()  # draw works on a copy
    changed = (dressed != bare).any(axis=2)
    assert changed.sum() > 5000
    # the skeleton's fully drawn pixels are the same with and without the mesh (drawn last)
    lines = (bare.max(axis=2) == 255)
    assert lines.sum() > 50 and (dressed[lines] == bare[lines]).all()
    # a row where the person was not seen gets no mesh
    take.arrays["valid"] = np.array([False, True, True])
    np.testing.assert_array_equal(draw(take, 0, black, (verts[0], faces)), bare)


def test_contact_sheet_draws_every_persons_mesh_and_none_without_mesh(tmp_path, skeleton, monkeypatch):
    from inference_server import overlay

    clip = _clip(tmp_path / "clip.mp4", 3)
    one = _anny_take(tmp_path, skeleton, "one", shift=(-0.9, 0.0, 0.0), clip=clip)
    two = _anny_take(tmp_path, skeleton, "two", shift=(0.9, 0.0, 0.0), clip=clip)
    read = lambda p: cv2.imread(str(p))  # noqa: E731
    kwargs = dict(count=3, width=3 * WIDTH, others=[two.path])
    with_mesh = read(overlay.contact_sheet(one.path, tmp_path / "mesh.png", **kwargs))
    without = read(overlay.contact_sheet(one.path, tmp_path / "bare.png", mesh=False, **kwargs))
    called = []
    monkeypatch.setattr(overlay, "take_mesh", lambda take, rows: called.append(take.path))
    no_model = read(overlay.contact_sheet(one.path, tmp_path / "nomodel.png", **kwargs))
    assert called == [one.path, two.path]
    # mesh=False draws what a Take without a mesh gets: the skeleton (and labels) only
    np.testing.assert_array_equal(without, no_model)
    assert with_mesh.shape == without.shape == (HEIGHT, 3 * WIDTH, 3)
    changed = (with_mesh != without).any(axis=2)[:, :WIDTH]   # the first tile (row 0)
    for take, side in ((one, "person 1"), (two, "person 2")):
        u, v = _pixels(take, ["spine03"], 0)[0]
        patch = changed[int(v) - 10:int(v) + 10, int(u) - 10:int(u) + 10]
        assert patch.mean() > 0.5, f"no mesh on {side}"
    assert changed[:, WIDTH // 2 - 15:WIDTH // 2 + 15].sum() == 0  # nothing between the two people


@pytest.fixture(scope="module")
def smpl_file(tmp_path_factory):
    from synthetic_models import write_model_file

    return write_model_file(tmp_path_factory.mktemp("models"), "smpl", "npz")


def _smpl_take(folder: Path, path: Path):
    from inference_server.body_models import SmplModel, random_pose
    from inference_server.take import read_take, write_take

    model = SmplModel("smpl", path)
    rng = np.random.default_rng(5)
    shape = rng.uniform(-1.0, 1.0, len(model.shape_names))
    skel = model.skeleton(shape)
    pose = random_pose(2, skel, scale=0.3, seed=2)
    pose[:, 0] = [[0.0, 0.0, 0.0], [0.0, 0.3, 0.0]]  # upright (the model's Y up is the Take's Z up), then turned
    root = np.array([[0.0, 0.0, 0.0], [0.2, 0.1, 0.05]])
    joints = model.reference_joints(pose, shape, root)
    arrays = _arrays(skel.names, skel.parents, skel.rest, skel.lengths, skel.from_model_pose(pose), root, joints)
    arrays.update(shape=shape, model_pose_aa=pose)
    meta = {"model": "smpl", "model_info": {"name": "smpl", "convention": "parent-aligned", "file": str(path)}}
    return read_take(write_take(folder / "smpl.take.npz", arrays, meta)), model


def test_smpl_mesh_sits_on_the_takes_joints(tmp_path, smpl_file):
    from inference_server.overlay import MESH_BGR, draw_mesh, take_mesh

    take, model = _smpl_take(tmp_path, smpl_file)
    verts, faces = take_mesh(take, [1])
    assert verts.shape == (1, 6890, 3) and faces.shape == (13776, 3)
    np.testing.assert_array_equal(faces, np.asarray(model.data["f"], dtype=np.int64))
    # The synthetic file puts each joint at the centre of its own ring of vertices, skinned rigidly to its bone:
    # the posed rings' centres are the Take's joints, seen by the camera.
    reg = np.asarray(model.data["J_regressor"], dtype=np.float64)
    joints_cam = take["joints_world"][1] @ WORLD2CAM.T + take["t_world2cam"][1]
    err = np.linalg.norm(reg @ verts[0].astype(np.float64) - joints_cam, axis=1)
    assert err.max() < 0.005, err.max()
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    assert draw_mesh(image, verts[0], faces, take["K"], MESH_BGR) > 100


def test_missing_model_file_gives_no_mesh_and_one_warning(tmp_path, smpl_file, caplog):
    from inference_server.overlay import draw, take_mesh

    take, _ = _smpl_take(tmp_path, smpl_file)
    take.meta["model_info"]["file"] = str(tmp_path / "moved" / "SMPL_NEUTRAL.npz")
    with caplog.at_level(logging.WARNING, logger="reel2rig.overlay"):
        assert take_mesh(take, [0]) is None
        assert take_mesh(take, [1]) is None
    warnings = [r for r in caplog.records if r.name == "reel2rig.overlay"]
    assert len(warnings) == 1 and "SMPL_NEUTRAL.npz" in warnings[0].getMessage()
    assert draw(take, 0, np.zeros((HEIGHT, WIDTH, 3), np.uint8)).any()  # the skeleton is still drawn


def test_other_models_and_foreign_skeletons_give_no_mesh(tmp_path, skeleton):
    from inference_server.overlay import take_mesh

    take = _anny_take(tmp_path, skeleton)
    take.meta["model"] = "something-else"
    assert take_mesh(take, [0]) is None
    take.meta["model"] = "anny"
    take.arrays["bone_names"] = np.array([n + "_x" for n in skeleton.names])
    assert take_mesh(take, [0]) is None


def test_hands_only_take_gets_only_the_hands_mesh(tmp_path, skeleton):
    from inference_server.overlay import take_mesh

    take = _anny_take(tmp_path, skeleton)
    whole = take_mesh(take, [1])[1]
    take.meta["hands_only"] = True
    verts, faces = take_mesh(take, [1])
    assert 0 < len(faces) < 0.25 * len(whole)
    used = verts[0][np.unique(faces)].astype(np.float64)
    wrists = [take["joints_world"][1][take.bone_names.index(f"wrist.{side}")] @ WORLD2CAM.T + take["t_world2cam"][1]
              for side in "LR"]
    distance = np.stack([np.linalg.norm(used - w, axis=1) for w in wrists])   # (2, vertices used)
    assert (distance.min(axis=1) < 0.05).all()      # both hands are there (the right one swung away)
    assert distance.min(axis=0).max() < 0.25        # and nothing farther than a hand's length from a wrist
