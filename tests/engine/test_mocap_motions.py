"""The bench's held-out CMU motions (bench/mocap_motions.py): the renderer's posing replays the retarget exactly."""
from __future__ import annotations

import numpy as np
import pytest


def test_the_renderer_poses_the_retargeted_rotations(monkeypatch):
    from inference_server.motion_data_mocap import default_mocap_dir

    if not (default_mocap_dir() / "cmu_mb_30fps.npz").exists():
        pytest.skip(f"the CMU packs are not in {default_mocap_dir()} (internal material)")
    from bench import mocap_motions as mm
    from bench.motions import MOTIONS
    from bench.render import pose_person
    from inference_server.anny_skeleton import load_anny_model
    from rigs.rotations import aa_to_matrix

    # register() adds to the module-level registry: give it a copy, so later tests see the standard motions only
    monkeypatch.setattr("bench.motions.MOTIONS", dict(MOTIONS))
    from bench.motions import MOTIONS

    model = load_anny_model()
    mm.register(["cmu_walk"], model)
    assert "cmu_walk" in MOTIONS and MOTIONS["cmu_walk"].kind == "body"
    bones, L = mm.take_rotations("cmu_walk")
    posed = pose_person(model, "cmu_walk", "average", np.arange(len(L)) / mm.FPS, int(mm.FPS))
    got = posed["local_rotations_aa"]                                    # (T, J, 3) the truth's, from the posed bones
    idx = [posed["names"].index(b) for b in bones]
    np.testing.assert_allclose(aa_to_matrix(got[:, idx]), aa_to_matrix(L), atol=1e-6)
    assert np.abs(np.delete(got, idx, axis=1)).max() < 1e-6              # every other bone at rest, as in training
    travel = np.ptp(posed["bone_poses"][:, 0, :2, 3], axis=0)
    assert travel.max() > 2.0, "the walk travels (the renderer plants the feet)"
