"""Motion-network training data (inference_server/motion_data*.py) on tiny synthetic inputs with known answers: a
mocap-like pack written here (a few joints, known quaternions), a known camera, synthetic feet and motions. numpy
only; no Anny, no real packs (tests/engine/test_motion_data_mocap.py has those)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference_server import motion_data as md
from inference_server import motion_data_augment as aug
from inference_server import motion_data_camera as cams
from inference_server import motion_data_mocap as mm

FPS = 30.0

# A 10-joint MB-named skeleton (y up, facing +Z, left toward +X): hips → spine; hips → left/right hip joint → knee
# → ankle → ball of the foot. End sites: the two toe tips.
NAMES = ["Hips", "Spine", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot",
         "RightToeBase"]
PARENTS = [-1, 0, 0, 2, 3, 4, 0, 6, 7, 8]
OFFSETS = [[0, 0, 0], [0, 0.5, 0], [0.1, 0, 0], [0, -0.45, 0], [0, -0.45, 0], [0, -0.05, 0.1], [-0.1, 0, 0],
           [0, -0.45, 0], [0, -0.45, 0], [0, -0.05, 0.1]]
END_PARENTS = [5, 9]
END_OFFSETS = [[0, 0, 0.05], [0, 0, 0.05]]


def quat_xyzw(axis, deg) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    half = np.radians(deg) / 2
    return np.concatenate([axis / np.linalg.norm(axis) * np.sin(half), [np.cos(half)]])


def write_pack(path: Path, clips: list[tuple[np.ndarray, np.ndarray]], subjects=None, ids=None) -> Path:
    """A pack in the README's layout from (quat (T, J, 4) xyzw, root (T, 3)) per clip."""
    n = len(clips)
    lengths = [len(r) for _, r in clips]
    np.savez(path, joint_names=np.array(NAMES), parents=np.array(PARENTS, dtype=np.int16),
             offsets=np.tile(np.array(OFFSETS, dtype=np.float32), (n, 1, 1)),
             end_site_parents=np.array(END_PARENTS, dtype=np.int16),
             end_site_offsets=np.tile(np.array(END_OFFSETS, dtype=np.float32), (n, 1, 1)),
             root_pos=np.concatenate([r for _, r in clips]).astype(np.float32),
             rot_quat=np.concatenate([q for q, _ in clips]).astype(np.float16),
             clip_start=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
             clip_len=np.array(lengths, dtype=np.int64),
             clip_id=np.array(ids or [f"01_{i + 1:02d}" for i in range(n)]),
             subject=np.array(subjects or ["1"] * n), description=np.array(["test"] * n),
             category=np.array(["walk"] * n), source=np.array(["test"] * n),
             fps_orig=np.full(n, 120.0, dtype=np.float32), skeleton_exact=np.ones(n, dtype=bool),
             fps=np.float32(FPS), up_axis=np.array("y"), quat_order=np.array("xyzw"), skeleton_family=np.array("mb"))
    return path


def identity_quats(n_frames: int) -> np.ndarray:
    q = np.zeros((n_frames, len(NAMES), 4))
    q[..., 3] = 1.0
    return q


# ---------------------------------------------------------------------------------------------------------------
# Loading, FK, axes


def test_pack_loads_and_fk_gives_the_known_positions(tmp_path):
    q = identity_quats(2)
    q[1, 0] = quat_xyzw([0, 1, 0], 90)     # frame 1: the whole body turned 90° about the vertical (y)
    q[1, 3] = quat_xyzw([1, 0, 0], 90)     # ... and the left knee bent 90° about x
    root = np.array([[0.0, 1.0, 0.0], [0.5, 1.0, 2.0]])
    pack = mm.load_pack(write_pack(tmp_path / "p.npz", [(q, root)]))
    assert pack.family == "mb" and len(pack) == 1 and pack.joint_names == tuple(NAMES)
    clip = pack.clip(0)
    assert clip.quat_xyzw.dtype == np.float64 and clip.quat_xyzw.shape == (2, 10, 4)
    R_w, pos, ends = mm.mocap_fk(clip.parents, clip.offsets, mm.quat_xyzw_to_matrix(clip.quat_xyzw), clip.root_pos,
                                 clip.end_site_parents, clip.end_site_offsets)
    tol = 2e-3  # float16 quaternions
    # Frame 0, T-pose: left ankle = root + (0.1, -0.9, 0); toe tip 5 cm lower and 15 cm forward (+z).
    np.testing.assert_allclose(pos[0, 4], [0.1, 0.1, 0.0], atol=tol)
    np.testing.assert_allclose(ends[0, 0], [0.1, 0.05, 0.15], atol=tol)
    # Frame 1: Ry(90°) takes +x to −z and +z to +x. Left hip at root + Ry (0.1, 0, 0) = (0.5, 1, 1.9); the knee
    # 0.45 below; the shin, bent 90° about x, points along Ry Rx (0, −1, 0) = Ry (0, 0, −1) = (−1, 0, 0).
    np.testing.assert_allclose(pos[1, 2], [0.5, 1.0, 1.9], atol=tol)
    np.testing.assert_allclose(pos[1, 3], [0.5, 0.55, 1.9], atol=tol)
    np.testing.assert_allclose(pos[1, 4], [0.05, 0.55, 1.9], atol=tol)
    np.testing.assert_allclose(R_w[1, 4] @ [0, 1, 0], [1, 0, 0], atol=tol)


def test_y_up_to_z_up():
    # (x, y, z) → (x, −z, y): up stays up, the T-pose's +Z front becomes −Y (Anny's rest), left stays +X.
    np.testing.assert_allclose(mm.pack_to_world_points([1.0, 2.0, 3.0]), [1.0, -3.0, 2.0])
    np.testing.assert_allclose(mm.pack_to_world_points([0, 0, 1]), [0, -1, 0])
    assert np.isclose(np.linalg.det(mm.A_PACK2WORLD), 1.0)
    # A turn about the pack's vertical (y) is a turn about the world's vertical (z) by the same angle.
    R_pack = mm.quat_xyzw_to_matrix(quat_xyzw([0, 1, 0], 30))
    R_world = mm.pack_to_world_rotations(R_pack)
    np.testing.assert_allclose(R_world, aug.rot_z(np.radians(30)), atol=1e-12)
    # and rotations commute with the conversion: A (R p) = R_world (A p)
    p = np.array([0.3, -0.2, 0.7])
    np.testing.assert_allclose(mm.pack_to_world_points(R_pack @ p), R_world @ mm.pack_to_world_points(p),
                               atol=1e-12)


def test_clip_world_converts_and_grounds(tmp_path):
    n = 40
    root = np.tile([0.0, 1.3, 0.0], (n, 1))          # standing 0.35 m too high: the toes are at y = 0.35
    pack = mm.load_pack(write_pack(tmp_path / "p.npz", [(identity_quats(n), root)]))
    w = mm.clip_world(pack.clip(0))
    assert w.names[-2:] == ("LeftToeBase_end", "RightToeBase_end")
    # Floor: the still foot points' 10th percentile height (ankles 0.4, balls and toe tips 0.35) = the toe level,
    # moved to z = 0.
    np.testing.assert_allclose(w.floor_shift, -0.35, atol=2e-3)
    np.testing.assert_allclose(w.positions[:, w.names.index("LeftToeBase_end"), 2], 0.0, atol=2e-3)
    np.testing.assert_allclose(w.positions[0, w.names.index("LeftToeBase_end")], [0.1, -0.15, 0.0], atol=2e-3)
    np.testing.assert_allclose(w.positions[0, 0], [0.0, 0.0, 0.95], atol=2e-3)  # hips 0.95 m over the floor


def test_a_glitched_first_frame_is_trimmed(tmp_path):
    n = 30
    root = np.tile([0.0, 1.0, 0.0], (n, 1))
    root[:, 2] = np.arange(n) * 0.01                  # walking 0.3 m/s
    root[0] = [2.0, 1.0, 0.0]                         # frame 0 two metres off (60 m/s)
    pack = mm.load_pack(write_pack(tmp_path / "p.npz", [(identity_quats(n), root)]))
    w = mm.clip_world(pack.clip(0))
    assert w.first_frame == 1 and w.positions.shape[0] == n - 1


def test_a_missing_pack_names_the_file_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(mm.MocapError, match=r"cmu_mb_30fps\.npz.*REEL2RIG_MOCAP_DIR"):
        mm.load_pack("mb", tmp_path)
    monkeypatch.setenv("REEL2RIG_MOCAP_DIR", str(tmp_path))
    assert mm.pack_path("daz") == tmp_path / "cmu_daz_30fps.npz"
    write_pack(tmp_path / "cmu_mb_30fps.npz", [(identity_quats(3), np.zeros((3, 3)))])
    assert len(mm.load_pack("mb")) == 1
    bad = tmp_path / "bad.npz"
    np.savez(bad, joint_names=np.array(NAMES))
    with pytest.raises(mm.MocapError, match="bad.npz.*missing"):
        mm.load_pack(bad)


def test_subset_keeps_the_chosen_clips(tmp_path):
    clips = [(identity_quats(n), np.full((n, 3), float(n))) for n in (3, 5, 4)]
    pack = mm.load_pack(write_pack(tmp_path / "p.npz", clips))
    sub = pack.subset([2, 0])
    assert sub.clip_ids == ("01_03", "01_01") and list(sub.clip_len) == [4, 3] and list(sub.clip_start) == [0, 4]
    np.testing.assert_allclose(sub.clip(0).root_pos, 4.0)
    np.testing.assert_allclose(sub.clip(1).root_pos, 3.0)


# ---------------------------------------------------------------------------------------------------------------
# Cameras, projection, normalisation


def test_level_camera_and_a_known_pixel():
    R = cams.look_at(np.zeros(3), np.array([0.0, 5.0, 0.0]))
    np.testing.assert_allclose(R, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)  # fit.R_WORLD2CAM_LEVEL
    K = cams.intrinsics(90.0, (1920, 1080))
    assert np.isclose(K[0, 0], 960.0) and np.allclose(K[:2, 2], [960, 540])
    # World (1, 5, 0.5): 5 m ahead, 1 m right, 0.5 m up → camera (1, −0.5, 5) → pixel (960 + 192, 540 − 96).
    uv, pc = cams.project(np.array([[[1.0, 5.0, 0.5]]]), K, R[None], np.zeros((1, 3)))
    np.testing.assert_allclose(pc[0, 0], [1.0, -0.5, 5.0], atol=1e-12)
    np.testing.assert_allclose(uv[0, 0], [1152.0, 444.0], atol=1e-9)
    # The same with the camera moved to (0, −2, 1) and t = −R C.
    C = np.array([0.0, -2.0, 1.0])
    uv2, _ = cams.project(np.array([[[1.0, 3.0, 1.5]]]), K, R[None], (-R @ C)[None])
    np.testing.assert_allclose(uv2[0, 0], [1152.0, 444.0], atol=1e-9)


def test_normalisation_round_trip_and_box():
    rng = np.random.default_rng(0)
    kp = rng.uniform([300, 200], [700, 900], (6, 33, 2))
    vis = np.ones((6, 33), dtype=bool)
    boxes, ok = cams.boxes_from_keypoints(kp, vis)
    assert ok.all()
    lo, hi = kp.min(axis=1), kp.max(axis=1)
    np.testing.assert_allclose(boxes[:, :2], (lo + hi) / 2)
    np.testing.assert_allclose(boxes[:, 2], 1.2 * np.max(hi - lo, axis=1))
    k, b = cams.normalize_keypoints(kp, boxes, (1280, 960))
    assert np.all(np.abs(k) <= 0.5 / 1.2 + 1e-12)                # inside the padded box
    np.testing.assert_allclose(b[:, 0], (boxes[:, 0] - 640) / 1280)
    kp2, boxes2 = cams.denormalize_keypoints(k, b, (1280, 960))
    np.testing.assert_allclose(kp2, kp, atol=1e-9)
    np.testing.assert_allclose(boxes2, boxes, atol=1e-9)


def test_boxes_hold_through_unseen_frames():
    kp = np.zeros((4, 33, 2))
    kp[:, :2] = [[100, 100], [200, 300]]
    vis = np.zeros((4, 33), dtype=bool)
    vis[1, :2] = True
    vis[3, :2] = True
    kp[3, :2] += 50
    boxes, ok = cams.boxes_from_keypoints(kp, vis)
    assert list(ok) == [False, True, False, True]
    np.testing.assert_allclose(boxes[0], boxes[1])                # before the first seen frame: the first box
    np.testing.assert_allclose(boxes[2], boxes[1])                # a gap holds the last box
    np.testing.assert_allclose(boxes[3, :2], [200, 250])


def test_angular_velocity_of_a_steady_pan():
    rate = np.radians(20.0)                                       # 20°/s to the left (about world +Z)
    t = np.arange(10) / FPS
    R0 = cams.look_at(np.zeros(3), np.array([0.0, 1.0, 0.0]))
    R = R0[None] @ np.swapaxes(aug.rot_z(rate * t), -1, -2)       # camera axes turn by Rz(rate t) in the world
    w = cams.angular_velocity(R, FPS)
    # ΔR = R[t] R[t−1]ᵀ = R0 Rz(−δ) R0ᵀ (δ = rate/fps): a turn by −δ about R0 ẑ, the world's up in camera axes,
    # which is −y (y points down) — i.e. +δ about +y.
    np.testing.assert_allclose(w, np.tile([0.0, rate, 0.0], (10, 1)), atol=1e-9)


def test_cameras_are_reproducible_by_seed():
    path = np.cumsum(np.tile([0.03, 0.0, 0.0], (50, 1)), axis=0) + [0, 0, 0.9]
    a = cams.sample_camera(np.random.default_rng(5), path, FPS)
    b = cams.sample_camera(np.random.default_rng(5), path, FPS)
    c = cams.sample_camera(np.random.default_rng(6), path, FPS)
    np.testing.assert_array_equal(a.R_world2cam, b.R_world2cam)
    np.testing.assert_array_equal(a.t_world2cam, b.t_world2cam)
    np.testing.assert_array_equal(a.K, b.K)
    assert not np.allclose(a.t_world2cam, c.t_world2cam)
    for cam in (a, c):
        Rt = np.swapaxes(cam.R_world2cam, -1, -2)
        np.testing.assert_allclose(Rt @ cam.R_world2cam, np.broadcast_to(np.eye(3), Rt.shape), atol=1e-9)
        fov = 2 * np.degrees(np.arctan(0.5 * max(cam.image_size) / cam.K[0, 0]))
        assert 40.0 - 1e-9 <= fov <= 90.0 + 1e-9


def test_every_camera_kind_keeps_the_body_in_front():
    path = np.cumsum(np.tile([0.04, 0.01, 0.0], (81, 1)), axis=0) + [0, 0, 0.9]
    for kind in cams.CameraSettings().kinds:
        settings = cams.CameraSettings(kinds=(kind,), kind_p=(1.0,))
        cam = cams.sample_camera(np.random.default_rng(1), path, FPS, settings)
        assert cam.kind == kind
        _, pc = cams.project(path[:, None], cam.K, cam.R_world2cam, cam.t_world2cam)
        assert np.all(pc[:, 0, 2] > 0.5), kind
        moving = not np.allclose(cam.R_world2cam, cam.R_world2cam[0]) or not np.allclose(
            cam.t_world2cam, cam.t_world2cam[0])
        assert moving == (kind != "static"), kind


def test_corruption_dropout_rate_matches_the_asked_rate():
    rng = np.random.default_rng(11)
    kp = rng.uniform(0, 1000, (400, 33, 2))
    vis = np.ones((400, 33), dtype=bool)
    for rate in (0.05, 0.2):
        s = cams.CorruptionSettings(noise=(0.0, 0.0), landmark_dropout=rate, frame_dropout=0.0, burst_rate=0.0,
                                    swap_rate=0.0)
        out, v, seen = cams.corrupt(rng, kp, vis, np.full(400, 500.0), s)
        assert seen.all()
        np.testing.assert_array_equal(out, kp)                    # no noise, no swaps
        assert abs((1 - v.mean()) - rate) < 0.01                  # 13,200 landmarks: σ ≈ 0.003
    s = cams.CorruptionSettings(noise=(0.0, 0.0), landmark_dropout=0.0, frame_dropout=0.1, burst_rate=0.0,
                                swap_rate=0.0)
    _, v, seen = cams.corrupt(rng, np.zeros((4000, 33, 2)), np.ones((4000, 33), bool), np.ones(4000), s)
    assert abs((1 - seen.mean()) - 0.1) < 0.015 and np.array_equal(v.any(axis=1), seen)


def test_corruption_noise_swaps_and_bursts():
    rng = np.random.default_rng(2)
    kp = np.tile(np.arange(33.0)[:, None] * [10.0, 1.0], (2000, 1, 1))
    vis = np.ones((2000, 33), dtype=bool)
    s = cams.CorruptionSettings(noise=(0.01, 0.01), landmark_dropout=0.0, frame_dropout=0.0, burst_rate=0.0,
                                swap_rate=0.0)
    out, _, _ = cams.corrupt(rng, kp, vis, np.full(2000, 300.0), s)
    assert abs(np.std(out - kp) - 3.0) < 0.05                     # σ = 0.01 × the 300 px box
    out, v, seen = cams.corrupt(rng, kp, vis, np.full(2000, 300.0), cams.CorruptionSettings.clean())
    assert np.array_equal(out, kp) and v.all() and seen.all()
    s = cams.CorruptionSettings(noise=(0.0, 0.0), landmark_dropout=0.0, frame_dropout=0.0, burst_rate=0.0,
                                swap_rate=0.02, swap_frames=(1, 1))
    out, _, _ = cams.corrupt(rng, kp, vis, np.ones(2000), s)
    swapped = np.any(out != kp, axis=(1, 2))
    assert 0.01 < swapped.mean() < 0.03
    # a swapped frame carries exactly a left/right relabelling of arms, legs or the whole body
    perms = [cams.swap_index(g) for g in (cams.ARM_PAIRS, cams.LEG_PAIRS, cams.POSE_PAIRS)]
    for t in np.nonzero(swapped)[0][:20]:
        assert any(np.array_equal(out[t], kp[t, p]) for p in perms)
    s = cams.CorruptionSettings(noise=(0.0, 0.0), landmark_dropout=0.0, frame_dropout=0.0, burst_rate=0.01,
                                burst_frames=(5, 5), swap_rate=0.0)
    _, _, seen = cams.corrupt(rng, kp, vis, np.ones(2000), s)
    runs = np.diff(np.concatenate([[0], (~seen).astype(int), [0]]))
    lengths = np.nonzero(runs == -1)[0] - np.nonzero(runs == 1)[0]
    assert len(lengths) > 5 and np.all(lengths >= 5)              # missing frames come in runs of ≥ 5


def test_corruption_is_reproducible_by_seed():
    kp = np.random.default_rng(0).uniform(0, 500, (81, 33, 2))
    vis = np.ones((81, 33), dtype=bool)
    a = cams.corrupt(np.random.default_rng(3), kp, vis, np.full(81, 200.0))
    b = cams.corrupt(np.random.default_rng(3), kp, vis, np.full(81, 200.0))
    c = cams.corrupt(np.random.default_rng(4), kp, vis, np.full(81, 200.0))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------------------------------------------------------
# Augmentations and labels

BONES = ["root", "thigh.L", "shin.L", "thigh.R", "shin.R", "spine"]


def random_motion(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    aa = np.cumsum(rng.normal(0, 0.05, (n, len(BONES), 3)), axis=0)
    root = np.cumsum(rng.normal(0, 0.02, (n, 3)), axis=0) + [0, 0, 0.9]
    return aa, root


def test_mirroring_twice_is_the_identity_and_swaps_sides():
    swap = aug.side_swap_index(BONES)
    assert list(swap) == [0, 3, 4, 1, 2, 5]
    aa, root = random_motion(20)
    aa2, root2 = aug.mirror_motion(aa, root, swap)
    # sides swapped, Y and Z components negated (D R D, D = diag(−1, 1, 1)); the root reflected x → −x
    np.testing.assert_allclose(aa2[:, 1], aa[:, 3] * [1, -1, -1])
    np.testing.assert_allclose(aa2[:, 4], aa[:, 2] * [1, -1, -1])
    np.testing.assert_allclose(aa2[:, 0], aa[:, 0] * [1, -1, -1])
    np.testing.assert_allclose(root2, root * [-1, 1, 1])
    aa3, root3 = aug.mirror_motion(aa2, root2, swap)
    np.testing.assert_array_equal(aa3, aa)
    np.testing.assert_array_equal(root3, root)
    # For rotations the sign rule is the reflection D R D: check on matrices.
    from rigs.rotations import aa_to_matrix

    D = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(aa_to_matrix(aa2[:, 1]), D @ aa_to_matrix(aa[:, 3]) @ D, atol=1e-12)
    # landmarks: the MediaPipe pairs swap and reflect
    pts = np.random.default_rng(1).normal(size=(3, 33, 3))
    m = aug.mirror_positions(pts, cams.POSE_MIRROR)
    np.testing.assert_allclose(m[:, 11], pts[:, 12] * [-1, 1, 1])
    np.testing.assert_allclose(aug.mirror_positions(m, cams.POSE_MIRROR), pts)


def test_speed_change():
    aa, root = random_motion(31)
    same_aa, same_root = aug.change_speed(aa, root, 1.0)
    np.testing.assert_array_equal(same_aa, aa)
    np.testing.assert_array_equal(same_root, root)
    fast_aa, fast_root = aug.change_speed(aa, root, 2.0)          # every other frame
    assert len(fast_root) == 16
    np.testing.assert_allclose(fast_aa, aa[::2], atol=1e-12)
    np.testing.assert_allclose(fast_root, root[::2])
    slow_aa, slow_root = aug.change_speed(aa, root, 0.5)          # in between: half-way rotations and positions
    assert len(slow_root) == 61
    np.testing.assert_allclose(slow_root[1], (root[0] + root[1]) / 2)
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    R0, R1 = aa_to_matrix(aa[0]), aa_to_matrix(aa[1])
    half = aa_to_matrix(slow_aa[1])
    # half-way: R0 · H with H² = R0ᵀ R1
    H = np.swapaxes(R0, -1, -2) @ half
    np.testing.assert_allclose(H @ H, np.swapaxes(R0, -1, -2) @ R1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(matrix_to_aa(H), axis=-1),
                               np.linalg.norm(matrix_to_aa(np.swapaxes(R0, -1, -2) @ R1), axis=-1) / 2, atol=1e-9)
    assert len(aug.resample_times(81, 1.25)) == 65


def test_rotate_heading_turns_the_root_and_the_path():
    aa, root = random_motion(10)
    aa2, root2 = aug.rotate_heading(aa, root, np.pi / 2)
    from rigs.rotations import aa_to_matrix

    np.testing.assert_allclose(aa_to_matrix(aa2[:, 0]), aug.rot_z(np.pi / 2) @ aa_to_matrix(aa[:, 0]), atol=1e-9)
    np.testing.assert_array_equal(aa2[:, 1:], aa[:, 1:])
    d, d2 = root[5] - root[0], root2[5] - root2[0]
    np.testing.assert_allclose(d2, [-d[1], d[0], d[2]], atol=1e-12)
    np.testing.assert_allclose(root2[0], root[0])


def test_contacts_of_a_planted_then_lifted_foot():
    n = 60
    heel = np.zeros((n, 3))
    heel[:, 2] = 0.02                                             # planted 2 cm above the floor for 30 frames
    t = np.arange(n - 30) / FPS
    heel[30:, 1] = 1.2 * t                                        # then swings forward at 1.2 m/s
    heel[30:, 2] = 0.02 + 0.6 * t                                 # and rises
    toe = heel + [0, 0.2, -0.01]
    toe[:35] = toe[0]                                             # the toe stays 5 frames longer (roll-off)
    toe[35:, 1:] = toe[0, 1:] + (heel[35:, 1:] - heel[35, 1:])
    soles = np.stack([heel, toe], axis=1)
    c = aug.foot_contacts(soles, FPS)
    assert c[:29, 0].all() and not c[31:, 0].any()
    assert c[:34, 1].all() and not c[36:, 1].any()
    assert aug.floor_height(soles, FPS) == pytest.approx(0.01, abs=0.011)


def test_heading_and_root_velocity_in_the_heading_frame():
    n = 30
    psi = np.full(n, np.pi / 2)                                   # turned 90° to the left: facing +X
    G = aug.rot_z(psi)
    assert np.allclose(aug.heading_angle(G), np.pi / 2)
    root = np.zeros((n, 3))
    root[:, 0] = np.arange(n) * 1.5 / FPS                         # walking forward (+X) at 1.5 m/s
    v = aug.root_velocity_heading(root, aug.heading_angle(G), FPS)
    np.testing.assert_allclose(v, np.tile([0.0, -1.5, 0.0], (n, 1)), atol=1e-9)  # ahead = −y in the heading frame
    # rest orientation faces −Y: heading 0
    assert np.isclose(aug.heading_angle(np.eye(3)[None])[0], 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Split


def test_split_is_deterministic_and_disjoint():
    ids = [f"{s:02d}_{k:02d}" for s in (1, 2, 5, 8, 13) for k in range(1, 6)] + [f"Li2018_{k}" for k in range(25)]
    subjects = [str(int(c[:2])) for c in ids[:25]] + ["?"] * 25
    held = md.split_of(ids, subjects)
    assert held.dtype == bool and held.shape == (50,)
    held_ids = {c for c, h in zip(ids, held) if h}
    train_ids = {c for c, h in zip(ids, held) if not h}
    assert not held_ids & train_ids and len(held_ids | train_ids) == 50
    assert {c[:2] for c in held_ids if c[2] == "_"} == {"02", "08"}   # whole subjects
    li = sorted(c for c in ids if c.startswith("Li"))
    assert held_ids & set(li) == {li[9], li[19]}                      # every 10th unknown-subject clip
    order = np.random.default_rng(0).permutation(50)                  # any order of the clips: the same split
    held2 = md.split_of([ids[i] for i in order], [subjects[i] for i in order])
    assert {ids[i] for i, h in zip(order, held2) if h} == held_ids


def prepared(family: str, ids: list[str], lengths: list[int], bones: tuple[str, ...] = ("root", "a.L", "a.R")
             ) -> md.PreparedPack:
    """A prepared pack whose clip k's root x is k + its family's offset, so rows can be traced after combining."""
    n, total = len(ids), sum(lengths)
    offset = 100.0 if family == "mb" else 0.0
    root = np.concatenate([np.full((m, 3), k + offset) for k, m in enumerate(lengths)])
    subjects = [c[:2].lstrip("0") if c[:2].isdigit() else "?" for c in ids]
    return md.PreparedPack(
        family=family, fps=FPS, bone_names=bones, clip_ids=tuple(ids), subjects=tuple(subjects),
        categories=("walk",) * n, clip_start=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        clip_len=np.array(lengths), first_frame=np.zeros(n, dtype=np.int64),
        local_aa=np.zeros((total, len(bones), 3), np.float32), root_pos=root.astype(np.float32),
        aim_error_deg=np.zeros(n), segment_error_deg=np.zeros((n, len(mm.SEGMENTS))), leg_ratio=np.ones(n),
        contact_frac=np.zeros((n, 4)), held_out=md.split_of(ids, subjects))


def test_combining_packs_drops_repeated_takes():
    mb = prepared("mb", ["01_01", "02_01", "Li2018_a"], [5, 6, 7])
    daz = prepared("daz", ["01_01", "13_01", "acLSTM_b"], [8, 9, 10])
    both = md.combine([mb, daz])
    assert both.family == "mb+daz"
    assert both.clip_ids == ("01_01", "02_01", "Li2018_a", "13_01", "acLSTM_b")
    assert list(both.clip_len) == [5, 6, 7, 9, 10] and both.n_frames == 37
    assert [float(both.clip(k)[1][0, 0]) for k in range(5)] == [100.0, 101.0, 102.0, 1.0, 2.0]
    assert list(both.held_out) == [False, True, False, False, False]          # subject 2 stays held out
    with pytest.raises(ValueError, match="other bones"):
        md.combine([mb, prepared("daz", ["05_01"], [4], bones=("root",))])


def test_window_starts_cover_every_frame_of_a_split():
    prep = prepared("mb", ["01_01", "01_02", "02_01"], [200, 50, 100])
    # 200 frames: windows at 0 and 81, and one ending on frame 199; the 50-frame clip: one padded window
    assert md.window_starts(prep, held_out=False, length=81) == [(0, 0), (0, 81), (0, 119), (1, 0)]
    assert md.window_starts(prep, held_out=True, length=81) == [(2, 0), (2, 19)]
    assert md.window_starts(prep, held_out=False, length=81, stride=40) == [(0, 0), (0, 40), (0, 80), (0, 119),
                                                                            (1, 0)]
