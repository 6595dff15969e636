"""The benchmark's world-grounding scores and pictures on synthetic truths with known answers: the camera rotation and
foot-contact columns of bench/evaluate.py, the Take's contacts in bench/methods.py, and bench/run.py's scene
selection, tables and top-view paths. numpy only (matplotlib for the picture); no bpy, no torch."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench import run
from bench.evaluate import FOOT_POINTS, Prediction, evaluate
from bench.methods import contacts_per_side

T = 20
LEVEL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # world X right, Z up, Y forward


def rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def synthetic_truth(pan_deg_per_frame: float = 1.0) -> dict:
    """A subject walking along world +X 3 m in front of a camera at (0, -3, 1.5) that pans about the vertical."""
    rng = np.random.default_rng(0)
    t = np.arange(T, dtype=float)
    body_w = rng.normal(scale=0.3, size=(33, 3)) + [0.0, 0.0, 1.0]
    body_w = body_w[None] + (0.05 * t)[:, None, None] * [1.0, 0.0, 0.0]       # (T, 33, 3)
    R = np.stack([LEVEL @ rot_z(pan_deg_per_frame * k).T for k in range(T)])  # (T, 3, 3) panning to the left
    centre = np.array([0.0, -3.0, 1.5])
    tr = -np.einsum("tij,j->ti", R, centre)
    cam = np.einsum("tij,tnj->tni", R, body_w) + tr[:, None]
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    uv = cam @ K.T
    hands_cam = cam[:, None, :21].repeat(2, 1)
    huv = hands_cam @ K.T
    contact = np.zeros((T, 2), bool)
    contact[:8, 0] = contact[5:15, 1] = True
    return dict(image_size=np.array([10_000, 10_000]), body_markers_world=body_w, body_markers_cam=cam,
                body_markers_2d=uv[..., :2] / uv[..., 2:] + 4_000, body_visible=np.ones((T, 33), bool),
                hand_points_cam=hands_cam, hand_points_2d=huv[..., :2] / huv[..., 2:] + 4_000,
                hand_visible=np.ones((T, 2, 21), bool), foot_contact=contact, R_world2cam=R, t_world2cam=tr)


def prediction(truth: dict, **world) -> Prediction:
    return Prediction("m", truth["body_markers_cam"].copy(), truth["body_markers_2d"].copy(),
                      truth["hand_points_cam"].copy(), truth["hand_points_2d"].copy(), **world)


# -------------------------------------------------------------------------------------------------- evaluate

def test_camera_rotation_column():
    g = synthetic_truth(pan_deg_per_frame=1.0)
    turned_world = g["R_world2cam"] @ rot_z(37.0).T  # a perfect camera in a world turned about the vertical
    assert evaluate(g, prediction(g, R_world2cam=turned_world))["camera_rotation_deg"] == pytest.approx(0, abs=1e-9)
    static = np.broadcast_to(LEVEL, (T, 3, 3))  # what direct-mapping assumes: the pan it misses, t° at frame t
    assert evaluate(g, prediction(g, R_world2cam=static))["camera_rotation_deg"] == pytest.approx((T - 1) / 2)
    assert math.isnan(evaluate(g, prediction(g))["camera_rotation_deg"])  # no camera: no score (raw-mediapipe)


def test_foot_contact_columns():
    g = synthetic_truth()
    perfect = evaluate(g, prediction(g, foot_contact=g["foot_contact"].copy()))
    assert perfect["foot_contact_f1"] == 1.0 and perfect["foot_contact_precision"] == 1.0
    pred = g["foot_contact"].astype(float)
    pred[:4] = np.nan       # no answer on frames 0-3: the 4 left contacts there are not scored
    pred[16:, 0] = 1.0      # 4 false alarms
    r = evaluate(g, prediction(g, foot_contact=pred))
    assert r["foot_contact_recall"] == 1.0
    assert r["foot_contact_precision"] == pytest.approx(14 / 18)
    assert r["foot_contact_f1"] == pytest.approx(28 / 32)
    assert math.isnan(evaluate(g, prediction(g))["foot_contact_f1"])


def test_take_contacts_per_side():
    p = np.array([[0.9, 0.1, 0.2, 0.3],    # left heel down
                  [0.2, 0.7, 0.6, np.nan],  # left toe down; right heel down (toe unknown)
                  [0.4, 0.5, np.nan, np.nan],  # 0.5 is not > 0.5; right unknown
                  [0.9, 0.9, 0.9, 0.9]])    # an invalid frame
    got = contacts_per_side(p, valid=np.array([True, True, True, False]))
    np.testing.assert_array_equal(got, [[1.0, 0.0], [1.0, 1.0], [0.0, np.nan], [np.nan, np.nan]])


# ------------------------------------------------------------------------------------------------------ run.py

def test_select_scenes_keeps_the_suite_order_and_names_unknown_scenes():
    from bench.scenes import suite

    names = [s.name for s in suite("standard")]
    picked = run.select_scenes("standard", f" {names[3]},{names[0]} ")
    assert [s.name for s in picked] == [names[0], names[3]]
    assert run.select_scenes("smoke", None) == suite("smoke")
    with pytest.raises(SystemExit) as err:
        run.select_scenes("smoke", "smoke_wave,walk_pan")
    assert "'walk_pan'" in str(err.value) and "smoke_wave, smoke_count" in str(err.value)
    with pytest.raises(SystemExit, match="no scene names"):
        run.select_scenes("smoke", " , ")


def test_unknown_scene_stops_render_only_before_any_work(monkeypatch, tmp_path):
    import inference_server.config

    monkeypatch.setattr(inference_server.config, "prepare_environment", lambda: tmp_path)
    monkeypatch.setattr(run, "ensure_rendered", lambda scenes: pytest.fail("rendered despite a bad scene name"))
    with pytest.raises(SystemExit, match="not in the 'smoke' suite; its scenes: smoke_wave, smoke_count"):
        run.main(["smoke", "--render-only", "--scenes", "wave", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    rendered = []
    monkeypatch.setattr(run, "ensure_rendered", lambda scenes: rendered.extend(scenes) or {})
    assert run.main(["smoke", "--render-only", "--scenes", "smoke_count", "--out", str(tmp_path / "out")]) == 0
    assert [s.name for s in rendered] == ["smoke_count"]


def test_tables_and_aggregate_have_the_world_columns():
    g = synthetic_truth()
    scenes = []
    for pan in (1.0, 3.0):
        g = synthetic_truth(pan)
        results = {m: evaluate(g, prediction(g, R_world2cam=np.broadcast_to(LEVEL, (T, 3, 3)),
                                              foot_contact=g["foot_contact"]))
                   for m in ("raw-mediapipe", "direct-mapping", "reel2rig")}   # motion-net: only with a network
        results["raw-mediapipe"] = evaluate(g, prediction(g))
        scenes.append({"frames": T, "capture": {}, "methods": results})
    summary = run.aggregate(scenes)
    assert summary["direct-mapping"]["camera_rotation_deg"] == pytest.approx((1.0 + 3.0) / 2 * (T - 1) / 2)
    assert summary["reel2rig"]["foot_contact_f1"] == 1.0
    table = run.markdown_table(summary, run.TABLE_BODY)
    head, rule, raw, direct, ours = table.splitlines()
    assert "camera rot °" in head and "contact F1" in head
    col = head.split(" | ").index("camera rot °")
    assert raw.split(" | ")[col] == "—" and direct.split(" | ")[col] == f"{(T - 1):.2f}"
    assert ours.split(" | ")[head.split(" | ").index("contact F1")] == "1.000"


def test_top_view_paths_are_compared_in_each_first_cameras_ground_frame(tmp_path):
    g = synthetic_truth(pan_deg_per_frame=2.0)
    hips = g["body_markers_world"][:, [23, 24]].mean(1)
    # A method whose world is turned 50° about Z and shifted: its camera and body both live in that world.
    W, shift = rot_z(50.0), np.array([4.0, -2.0, 0.3])
    own = lambda p: p @ W.T + shift  # noqa: E731  truth world → the method's world
    R_own = g["R_world2cam"] @ W.T
    feet = own(g["body_markers_world"][:, FOOT_POINTS])
    exact = prediction(g, R_world2cam=R_own, root_world=own(hips), foot_contact=g["foot_contact"])
    exact.feet_world = feet
    drifting = prediction(g, R_world2cam=R_own, root_world=own(hips) + (0.02 * np.arange(T))[:, None] * W[:, 1])
    drifting.root_world[:3] = np.nan  # starts late: aligned at frame 3
    no_world = prediction(g)
    paths, contacts, cameras = run.trajectory_paths({"exact": exact, "drift": drifting, "raw": no_world}, g)
    assert set(paths) == {"ground-truth", "exact", "drift"} and set(contacts) == {"ground-truth", "exact"}
    truth = paths["ground-truth"]
    # The truth, seen from its first camera (at the origin, looking along +y): the subject walks to the right, 3 m ahead.
    np.testing.assert_allclose(truth[:, 1], 3.0 + hips[:, 1], atol=1e-9)
    np.testing.assert_allclose(truth[:, 0], hips[:, 0], atol=1e-9)
    np.testing.assert_allclose(cameras[:, :2], 0.0, atol=1e-9)  # a pan turns the camera in place
    np.testing.assert_allclose(paths["exact"], truth, atol=1e-9)
    np.testing.assert_allclose(contacts["exact"], contacts["ground-truth"], atol=1e-9, equal_nan=True)
    planted = np.isfinite(contacts["ground-truth"]).all(-1)  # (T, 4): [L heel, L toe, R heel, R toe]
    np.testing.assert_array_equal(planted, g["foot_contact"][:, [0, 0, 1, 1]])
    # drift along the method's own world y = the first camera's forward (the camera looks along world +Y)
    drift = paths["drift"][3:] - truth[3:]
    np.testing.assert_allclose(drift, (0.02 * (np.arange(3, T) - 3))[:, None] * [0.0, 1.0, 0.0], atol=1e-9)
    png = run.trajectory_picture(tmp_path / "walk_trajectory.png", "walk", {"exact": exact, "raw": no_world}, g)
    assert png is not None and png.stat().st_size > 10_000
    assert run.trajectory_picture(tmp_path / "none.png", "none", {"raw": no_world}, None) is None
