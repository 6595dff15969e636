"""Several people in one clip, through the real engine pipeline (real networks, real fit, real files).

The clip puts the sample subject twice side by side (960×640): the left person plays the sample from frame 0, the
right one from half-way through, so the two move differently. The sample's ground truth, shifted, says where each
person's wrists are: every Take must follow its own person for the whole clip, with hands on the right wrists.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference_server.pipeline import CaptureOptions, run_capture
from inference_server.take import read_take

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"
FRAMES = 48
SHIFT = 45          # the right person plays the sample this many frames later
WIDTH = 480         # one sample frame's width


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    import cv2

    from inference_server.video import iter_frames

    folder = tmp_path_factory.mktemp("people")
    frames = [f for _, _, f in iter_frames(SAMPLE, 0, None)]
    n = len(frames)
    clip = folder / "two_people.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (2 * WIDTH, frames[0].shape[0]))
    for t in range(FRAMES):
        writer.write(np.hstack([frames[t], frames[(t + SHIFT) % n]]))
    writer.release()
    with np.load(TRUTH) as f:
        names = list(f["bone_names"])
        j2d = f["joints_2d"]
    wrists = [names.index("wrist.L"), names.index("wrist.R")]
    truth = np.stack([j2d[np.arange(FRAMES)][:, wrists],
                      j2d[(np.arange(FRAMES) + SHIFT) % n][:, wrists] + [WIDTH, 0]])   # (person, T, side, 2)
    events = []
    result = run_capture(clip, folder / "out", CaptureOptions(people=0, use_cache=False),
                         lambda *a: events.append(a), lambda: False)
    return result, truth, events


def test_one_take_per_person_main_person_first(two_people):
    result, _, events = two_people
    assert len(result.people) == 2 and result.people[0] == result.take_path
    assert result.people[1].name == "two_people.person2.take.npz"
    for rank, path in enumerate(result.people):
        meta = json.loads(path.with_name(path.name.replace(".npz", ".json")).read_text())
        assert meta["person"] == {"index": rank, "of": 2, "takes": [p.name for p in result.people]}
        assert meta["detection"]["people"] == 2
    fits = [e for e in events if e[0] == "fit"]
    assert fits[-1][1] == fits[-1][2], "fit progress reaches its total over both people"


def test_each_take_follows_its_own_person(two_people):
    result, truth, _ = two_people
    halves = []
    for path in result.people:
        take = read_take(path)
        assert take["valid"].mean() >= 0.95
        hips = take["pose_landmarks_2d"][take["valid"]][:, [23, 24], 0].mean(axis=1)
        assert (hips < WIDTH).all() or (hips > WIDTH).all(), "a track jumped between the two people"
        halves.append(int(hips.mean() > WIDTH))
    assert sorted(halves) == [0, 1]


def test_hands_are_found_on_their_own_wrists(two_people):
    result, truth, _ = two_people
    for path in result.people:
        take = read_take(path)
        hands = take["hand_landmarks_2d"][..., 0, :2]                    # (T, 2, 2) wrist landmark of each hand
        person = int(np.nanmean(take["pose_landmarks_2d"][:, [23, 24], 0]) > WIDTH)
        true = truth[person]                                              # (T, 2, 2)
        found = np.isfinite(hands[..., 0])
        assert found.mean(axis=0).min() >= 0.9, f"hand coverage {found.mean(axis=0)}"
        own = np.linalg.norm(hands - true, axis=-1)
        other = np.linalg.norm(hands - true[:, ::-1], axis=-1)
        assert not (found & (other < own)).any(), "a hand sits on the other wrist"
        assert np.nanmedian(own[found]) < 25.0
        assert (take["hand_source"][found] == 2).all()                 # hand network on a wrist crop


def test_one_person_by_default(two_people, tmp_path):
    """people=1 keeps the single-person path (Holistic): one Take, no person list."""
    result, _, _ = two_people
    clip = Path(read_take(result.take_path).meta["source"]["path"])
    one = run_capture(clip, tmp_path, CaptureOptions(frame_end=8), lambda *a: None, lambda: False)
    assert one.people == [] and "person" not in read_take(one.take_path).meta


def test_bad_people_option_is_refused():
    with pytest.raises(ValueError, match="people"):
        CaptureOptions.from_dict({"people": -2})
