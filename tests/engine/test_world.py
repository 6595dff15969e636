"""World grounding (inference_server/world.py) on a known walk: the benchmark's procedural walk posed on the engine's
Anny skeleton is the truth; a "fit" is made from it the way the fit's errors look (the root's depth jitters along
the line of sight, the legs' rotations wobble) and seen by a still, a panning and a travelling camera. The world
stage must give back planted feet, the truth's path and the camera's turn."""
from __future__ import annotations

import numpy as np
import pytest

from bench.evaluate import FOOT_POINTS, FOOT_SIDE
from bench.metrics import foot_sliding, root_trajectory_error

FPS = 30.0


def _rot_z(deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros((len(a), 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return R


@pytest.fixture(scope="module")
def walk():
    from bench.motions import MOTIONS
    from bench.render import pose_person
    from inference_server.anny_skeleton import load_anny_model, load_skeleton
    from rigs.fk import forward_kinematics

    skel = load_skeleton()
    model = load_anny_model()
    n = int(MOTIONS["walk"].duration_s * FPS)
    stamps = np.arange(n) / FPS
    posed = pose_person(model, "walk", "average", stamps, FPS)
    local = posed["local_rotations_aa"]
    root = posed["bone_poses"][:, 0, :3, 3]
    from inference_server.anny_skeleton import attached_points
    W = forward_kinematics(skel.rest, skel.parents, local, root)
    markers = attached_points(W, np.maximum(skel.body_marker_bone, 0), skel.body_marker_local)   # (T,33,3)
    floor = markers[:, [29, 30, 31, 32], 2].min()
    root = root - [0, 0, floor]
    markers = markers - [0, 0, floor]
    feet = markers[:, FOOT_POINTS]
    soles = markers[:, [29, 31, 30, 32]].reshape(n, 2, 2, 3)
    speed = np.linalg.norm(np.gradient(soles.mean(2)[..., :2], axis=0), axis=-1) * FPS
    contact = (soles[..., 2].min(2) < 0.03) & (speed < 0.2)                                       # (T,2)
    return {"skel": skel, "stamps": stamps, "local": local, "root": root, "feet": feet, "contact": contact}


def _noisy_fit(walk, seed=0):
    """The truth with the kind of error a smoothed fit has: the root's depth (world +Y, the level camera's line of
    sight) wanders by ~4 cm over half a second with 5 mm of frame-to-frame jitter on top, and the hips', knees' and
    feet's rotations wobble by ~3° (slowly) and 0.5° (per frame)."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    skel, local, root = walk["skel"], walk["local"].copy(), walk["root"].copy()
    n = len(root)

    def slow(size, sigma_frames=8.0):
        x = gaussian_filter1d(rng.normal(0, 1, size), sigma_frames, axis=0, mode="nearest")
        return x / x.std(axis=0)

    root[:, 1] += 0.04 * slow(n) + rng.normal(0, 0.005, n)
    root[:, 0] += 0.01 * slow(n) + rng.normal(0, 0.002, n)
    legs = [skel.index(b + s) for b in ("upperleg01", "lowerleg01", "foot") for s in (".L", ".R")]
    local[:, legs] += np.radians(3.0) * slow((n, len(legs), 3)) + rng.normal(0, np.radians(0.5), (n, len(legs), 3))
    return local, root


def _world_points(skel, world):
    from inference_server.anny_skeleton import attached_points
    from rigs.fk import forward_kinematics

    W = forward_kinematics(skel.rest, skel.parents, world.local_rotations_aa, world.root_position_world)
    return attached_points(W, np.maximum(skel.body_marker_bone, 0), skel.body_marker_local)


def _camera_frame(R, t, p):
    return np.einsum("tij,tnj->tni", R, p) + t[:, None]


def test_the_truth_itself_does_not_slide(walk):
    # The benchmark's own contact rule (3 cm, 0.2 m/s) lets the truth move a little at heel strike and toe off.
    # (4.3 mm/frame measured: the walk was planted for the render's sole vertices, not the engine's markers.)
    assert foot_sliding(walk["feet"], walk["contact"][:, FOOT_SIDE]) < 0.005
    assert walk["contact"].mean() > 0.4


def test_still_camera_plants_the_feet_and_keeps_the_path(walk):
    from inference_server.world import WorldSettings, ground

    skel = walk["skel"]
    local, root = _noisy_fit(walk)
    centre = np.array([0.5, -4.0, 1.0])                 # the camera, level, looking along +Y
    n = len(root)
    valid = np.ones(n, bool)
    conf = np.full(n, 0.9)
    plain = ground(skel, local, root - centre, walk["stamps"], valid, conf, None, WorldSettings(foot_lock=False))
    world = ground(skel, local, root - centre, walk["stamps"], valid, conf, None)
    truth_contact = walk["contact"][:, FOOT_SIDE]
    ours = np.stack([world.foot_contact[:, :2].max(1), world.foot_contact[:, 2:].max(1)], 1) > 0.5   # (T,2)
    before = foot_sliding(_world_points(skel, plain)[:, FOOT_POINTS], truth_contact)
    after = foot_sliding(_world_points(skel, world)[:, FOOT_POINTS], truth_contact)
    both = truth_contact & ours[:, FOOT_SIDE]
    pts = _world_points(skel, world)[:, FOOT_POINTS]
    planted_xy = foot_sliding(pts * [1.0, 1.0, 0.0], both)
    planted_z = foot_sliding(pts * [0.0, 0.0, 1.0], both)
    # Where the truth and we both say planted, the foot does not slide across the floor; up and down it keeps
    # part of the fit's noise (the leg swings at the hip and the knee turns by at most 5°: what is left along the
    # leg stays). Measured 1.0 and 4.3 mm/frame. The benchmark's bar of 3 mm/frame over all of the truth's
    # contacts is measured by `./reel2rig bench fit` on renders.
    assert planted_xy < 0.0015 and planted_z < 0.006, (planted_xy, planted_z)
    # The path's solve holds planted points tightly (σ_c 5 mm: moving the root costs the pose nothing) and takes
    # out much of the sliding before the lock bends a leg: measured 11.0 mm/f against 18.8 with σ_c 5 cm.
    loose = ground(skel, local, root - centre, walk["stamps"], valid, conf, None,
                   WorldSettings(foot_lock=False, sigma_contact_m=0.05))
    assert before < 0.75 * foot_sliding(_world_points(skel, loose)[:, FOOT_POINTS], truth_contact)
    assert after < 0.45 * before, (before, after)                             # measured 4.0 against 11.0 mm/f
    # the path: the truth's within 5 % of the distance walked (the injected depth error alone is ~2.5 %), and not
    # much worse than the picture's (the feet's odometry is loose in the path's solve: measured 3.0 % against 2.5 %)
    err = root_trajectory_error(world.root_position_world, walk["root"])
    assert err < 5.0 and err <= root_trajectory_error(root, walk["root"]) + 0.75, err
    assert world.info["camera"] == "still"
    # the camera stays still and the body stays where the picture put it (across the line of sight)
    assert np.ptp(world.t_world2cam, axis=0).max() < 1e-9
    cam = _camera_frame(world.R_world2cam, world.t_world2cam, world.root_position_world[:, None])[:, 0]
    fit_cam = (root - centre) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    assert np.abs(cam[:, 0] - fit_cam[:, 0]).mean() < 0.02
    # contacts agree with the truth's
    f1 = 2 * (ours & walk["contact"]).sum() / (ours.sum() + walk["contact"].sum())
    assert f1 > 0.8, f1


def test_panning_camera_turn_is_taken_out(walk):
    from inference_server.fit import R_WORLD2CAM_LEVEL as R_L
    from inference_server.world import ground

    skel = walk["skel"]
    local, root = _noisy_fit(walk, seed=1)
    n = len(root)
    centre = np.array([2.5, -3.0, 1.0])
    pan = np.linspace(0.0, 35.0, n)                     # the camera turns 35° to the left about world Z
    R_rel = R_L @ _rot_z(-pan) @ R_L.T                 # camera-from-camera0, i.e. R_w2c(t) = R_rel(t) R_L
    R_w2c = R_rel @ R_L
    # what a fit in the (turning) camera's frame gives: p_fit = R_Lᵀ R_w2c(t) (p − C)
    G_T = R_L.T @ R_w2c
    from rigs.rotations import aa_to_matrix, matrix_to_aa
    rest_root = skel.rest[0, :3, :3]
    local_fit = local.copy()
    local_fit[:, 0] = matrix_to_aa(rest_root.T @ G_T @ rest_root @ aa_to_matrix(local[:, 0]))
    root_fit = np.einsum("tij,tj->ti", G_T, root - centre)
    world = ground(skel, local_fit, root_fit, walk["stamps"], np.ones(n, bool), np.full(n, 0.9), R_rel)
    # the world's camera turns as the true one did (relative to the first frame)
    rel = world.R_world2cam @ world.R_world2cam[0].T
    true_rel = R_w2c @ R_w2c[0].T
    ang = np.degrees(np.arccos(np.clip((np.trace(np.swapaxes(rel, 1, 2) @ true_rel, axis1=1, axis2=2) - 1) / 2,
                                       -1, 1)))
    assert ang.max() < 0.01
    # the path after the camera's turn is taken out: about as good as the fit's own (its error in the world,
    # before the camera turned it: 7.7 % with this seed's depth noise; measured 7.7 % after)
    err = root_trajectory_error(world.root_position_world, walk["root"])
    assert err < root_trajectory_error(root, walk["root"]) + 1.5, err
    assert foot_sliding(_world_points(skel, world)[:, FOOT_POINTS], walk["contact"][:, FOOT_SIDE]) < 0.006


def test_travelling_camera_follows_the_feet(walk):
    from inference_server.world import ground

    skel = walk["skel"]
    local, root = _noisy_fit(walk, seed=2)
    n = len(root)
    # a tracking shot: the camera rides beside the walker, 3.5 m away, so the picture alone says "walking on the spot"
    centre = walk["root"] + np.array([0.0, -3.5, 0.0])
    world = ground(skel, local, root - centre, walk["stamps"], np.ones(n, bool), np.full(n, 0.9), None)
    assert world.info["camera"] == "travelling", world.info
    # Forward, the right way, but short: the feet alone give ~65 % of the distance here. Not the feet's fault: the
    # benchmark's walk moves its root in bursts at each change of stance foot (frames 8-11, 31-34, 49-52: no foot
    # planted by the truth's own rule, the root 4-6 cm per frame), which no contact model sees; with the truth's
    # contacts the feet give 0.94 m of the 1.44 m, and during contacts the markers slide only 1-3 mm/frame.
    step = walk["root"][-1, :2] - walk["root"][0, :2]
    got = world.root_position_world[-1, :2] - world.root_position_world[0, :2]
    assert np.dot(got, step) / np.dot(step, step) > 0.5, (got, step)
    cosine = np.dot(got, step) / np.linalg.norm(got) / np.linalg.norm(step)
    assert cosine > 0.95, cosine
    # and the camera travels with it, so the body still lines up with the picture
    cam = _camera_frame(world.R_world2cam, world.t_world2cam, world.root_position_world[:, None])[:, 0]
    fit_cam = (root - centre) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    assert np.median(np.abs(cam[:, :2] - fit_cam[:, :2])) < 0.05


def test_a_camera_seen_not_to_travel_is_not_taken_for_a_tracking_shot(walk):
    from inference_server.capture import camera_may_travel
    from inference_server.world import ground

    skel = walk["skel"]
    local, root = _noisy_fit(walk, seed=2)
    n = len(root)
    centre = walk["root"] + np.array([0.0, -3.5, 0.0])
    # the same tracking shot, but the background (seen on every frame) showed no translation: the feet's odometry
    # alone does not make it travel (a jump's flight or a bad contact can push the odometry a metre)
    seen = {"frames": n, "reliable_frames": n, "translating_frames": 0}
    assert not camera_may_travel(seen)
    assert camera_may_travel({**seen, "translating_frames": 3}) and camera_may_travel({**seen, "reliable_frames": 0})
    assert camera_may_travel({})
    world = ground(skel, local, root - centre, walk["stamps"], np.ones(n, bool), np.full(n, 0.9), None,
                   camera_may_travel=False)
    assert world.info["camera"] == "still"


def test_camera_space_keeps_the_cameras_view(walk):
    from inference_server.world import WorldSettings, ground

    skel = walk["skel"]
    local, root = _noisy_fit(walk, seed=3)
    n = len(root)
    R_rel = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    R_rel[:, 0, 0] = R_rel[:, 2, 2] = np.cos(0.3)
    R_rel[:, 0, 2], R_rel[:, 2, 0] = np.sin(0.3), -np.sin(0.3)
    world = ground(skel, local, root, walk["stamps"], np.ones(n, bool), np.full(n, 0.9), R_rel,
                   WorldSettings(space="camera"))
    assert np.allclose(world.R_world2cam, world.R_world2cam[0])
    assert world.info["space"] == "camera"
