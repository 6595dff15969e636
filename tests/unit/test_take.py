"""The Take format: validation, atomic writes, version refusal, no pickles."""
from __future__ import annotations

import os

import numpy as np
import pytest

from inference_server import take as tk


def minimal_arrays(n_frames: int = 4, n_bones: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rest = np.tile(np.eye(4), (n_bones, 1, 1))
    rest[:, 2, 3] = np.arange(n_bones) * 0.1
    return dict(
        frame_ids=np.arange(n_frames), timestamps=np.arange(n_frames) / 25.0, fps=np.float64(25.0),
        image_size=np.array([640, 480]), K=np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]),
        R_world2cam=np.tile(np.eye(3), (n_frames, 1, 1)), t_world2cam=np.zeros((n_frames, 3)),
        bone_names=np.array([f"b{j}" for j in range(n_bones)]), bone_parents=np.arange(-1, n_bones - 1),
        rest_matrices=rest, bone_lengths=np.full(n_bones, 0.1),
        local_rotations_aa=rng.normal(size=(n_frames, n_bones, 3)) * 0.1,
        root_position_world=np.zeros((n_frames, 3)), joints_world=np.zeros((n_frames, n_bones, 3)),
        bone_fitted=np.ones((n_frames, n_bones), bool), valid=np.ones(n_frames, bool),
        fit_residual_px=np.zeros(n_frames),
        pose_landmarks_2d=np.full((n_frames, 33, 3), np.nan), pose_landmarks_world=np.full((n_frames, 33, 3), np.nan),
        hand_landmarks_2d=np.full((n_frames, 2, 21, 3), np.nan))


def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    arrays = minimal_arrays()
    path = tk.write_take(tmp_path / "clip.take.npz", arrays, {"source": {"path": "clip.mp4"}})
    take = tk.read_take(path)
    assert take.n_frames == 4 and take.bone_names == ["b0", "b1", "b2"]
    np.testing.assert_allclose(take["local_rotations_aa"], arrays["local_rotations_aa"])
    assert take.meta["schema_version"] == tk.SCHEMA_VERSION
    assert take.meta["source"]["path"] == "clip.mp4" and take.meta["frames"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.take.json", "clip.take.npz"]


@pytest.mark.parametrize("field,bad,message", [
    ("joints_world", np.zeros((4, 2, 3)), "J = 3"),
    ("K", np.zeros((3, 4)), "axis 1"),
    ("bone_names", np.arange(3), "dtype"),
])
def test_writer_rejects_bad_shapes_and_types(tmp_path, field, bad, message):
    arrays = minimal_arrays()
    arrays[field] = bad
    with pytest.raises(tk.TakeError, match=message):
        tk.write_take(tmp_path / "x.take.npz", arrays, {})
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_writer_rejects_unknown_and_missing_fields(tmp_path):
    arrays = minimal_arrays()
    arrays["surprise"] = np.zeros(3)
    with pytest.raises(tk.TakeError, match="not in the Take schema"):
        tk.write_take(tmp_path / "x.take.npz", arrays, {})
    arrays = minimal_arrays()
    del arrays["valid"]
    with pytest.raises(tk.TakeError, match="'valid' is missing"):
        tk.write_take(tmp_path / "x.take.npz", arrays, {})


def test_reader_refuses_newer_major_version_with_a_fix(tmp_path):
    path = tmp_path / "new.take.npz"
    arrays = minimal_arrays()
    np.savez(path, schema_version=np.array("2.0"), **arrays)
    with pytest.raises(tk.TakeError, match=r"newer than this reader.*update the Reel2Rig add-on"):
        tk.read_take(path)


def test_reader_refuses_pickled_objects_and_garbage(tmp_path):
    obj = tmp_path / "obj.take.npz"
    np.savez(obj, schema_version=np.array("1.0"), frame_ids=np.array([{"a": 1}], dtype=object))
    with pytest.raises(tk.TakeError, match="not a readable Take"):
        tk.read_take(obj)
    junk = tmp_path / "junk.take.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(tk.TakeError, match="junk.take.npz"):
        tk.read_take(junk)
    with pytest.raises(tk.TakeError, match="not found"):
        tk.read_take(tmp_path / "missing.take.npz")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def failing(handle):
        handle.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        tk.atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_schema_table_documents_every_field():
    table = tk.describe_fields()
    for field in tk.FIELDS:
        assert f"`{field.name}`" in table
    assert table.count("\n") == len(tk.FIELDS) + 1  # header, rule, one row per field


def minimal_mesh(n_bones: int = 3) -> dict[str, np.ndarray]:
    rest = np.tile(np.eye(4), (n_bones, 1, 1))
    return dict(vertices=np.zeros((4, 3)), faces=np.array([[0, 1, 2], [0, 2, 3]]),
                bone_indices=np.array([[0, 1], [1, 0], [2, 0], [2, 1]], dtype=np.uint8),
                bone_weights=np.array([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [0.25, 0.75]]),
                bone_names=np.array([f"b{j}" for j in range(n_bones)]), rest_matrices=rest)


def test_mesh_sidecar_round_trip_and_validation(tmp_path):
    path = tk.mesh_path(tmp_path / "clip.person2.take.npz")
    assert path.name == "clip.person2.mesh.npz"
    tk.write_mesh(path, minimal_mesh())
    back = tk.read_mesh(path)
    assert set(back) == {f.name for f in tk.MESH_FIELDS} and back["faces"].tolist() == [[0, 1, 2], [0, 2, 3]]
    bad = minimal_mesh()
    bad["faces"] = np.array([[0, 1, 9]])
    with pytest.raises(tk.TakeError, match="outside"):
        tk.write_mesh(tmp_path / "bad.mesh.npz", bad)
    bad = minimal_mesh()
    bad["bone_indices"] = np.array([[0, 1], [1, 0], [3, 0], [2, 1]])
    with pytest.raises(tk.TakeError, match="bone outside"):
        tk.write_mesh(tmp_path / "bad.mesh.npz", bad)
    path.write_bytes(b"garbage")
    with pytest.raises(tk.TakeError, match="not a readable mesh file"):
        tk.read_mesh(path)
    with pytest.raises(tk.TakeError, match="not found"):
        tk.read_mesh(tmp_path / "none.mesh.npz")


def test_atomically_written_files_get_ordinary_permissions(tmp_path):
    """tempfile makes private files (0600); a Take, its sidecar and pictures are shared in studios."""
    import os
    import stat

    from inference_server import plots, take

    path = tmp_path / "a.take.json"
    take.atomic_write_bytes(path, b"{}")
    expected = 0o666 & ~take._UMASK
    assert stat.S_IMODE(os.stat(path).st_mode) == expected
    picture = plots.atomic_write_file(tmp_path / "p.png", lambda name: open(name, "wb").write(b"png"))
    assert stat.S_IMODE(os.stat(picture).st_mode) == expected
    folder = tmp_path / "d"
    folder.mkdir(mode=0o700)
    take.make_shareable(folder, directory=True)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~take._UMASK


def test_streamed_npz_is_what_numpy_writes_and_reads(tmp_path, monkeypatch):
    """`write_npz` writes a block of rows at a time; np.load reads the file as it reads savez_compressed's, and
    `read_npz_member` reads it back a block at a time into the array it is given."""
    import zipfile

    monkeypatch.setattr(tk, "NPZ_BLOCK_BYTES", 1000)   # many blocks per array
    rng = np.random.default_rng(1)
    arrays = {"a": rng.normal(size=(1234, 7, 3)), "names": np.array(["left", "right"]), "scalar": np.float64(2.5),
              "empty": np.zeros((0, 3)), "flags": rng.uniform(size=(300, 5)) > 0.5, "text": np.array('{"k": 1}')}
    blocks = []
    path = tmp_path / "x.npz"
    tk.atomic_write(path, lambda handle: tk.write_npz(handle, {**arrays, "a32": tk.Stored(arrays["a"], np.float32)},
                                                         after_block=lambda: blocks.append(1)))
    assert len(blocks) > 200
    with np.load(path, allow_pickle=False) as f:
        for name, value in arrays.items():
            np.testing.assert_array_equal(f[name], value)
            assert f[name].dtype == np.asarray(value).dtype
        assert f["a32"].dtype == np.float32
        np.testing.assert_array_equal(f["a32"], arrays["a"].astype(np.float32))
    with zipfile.ZipFile(path) as archive:
        given = []

        def allocate(shape, dtype):
            given.append(shape)
            return np.empty(shape, dtype)

        for name, value in arrays.items():
            np.testing.assert_array_equal(tk.read_npz_member(archive, name, allocate), value)
        assert given[0] == (1234, 7, 3)
    legacy = tmp_path / "legacy.npz"                  # a file numpy wrote (header version 1.0) reads the same way
    np.savez_compressed(legacy, a=arrays["a"])
    with zipfile.ZipFile(legacy) as archive:
        np.testing.assert_array_equal(tk.read_npz_member(archive, "a", np.empty), arrays["a"])


def test_a_truncated_npz_member_is_an_error_not_short_data(tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    np.save(buf, np.arange(1000.0))
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", buf.getvalue()[:-80])
    with zipfile.ZipFile(path) as archive, pytest.raises(tk.TakeError, match="truncated"):
        tk.read_npz_member(archive, "a", np.empty)


def test_a_take_written_from_stored_arrays_converts_them(tmp_path):
    arrays = minimal_arrays(n_frames=50)
    stored = {**arrays, "local_rotations_aa": tk.Stored(arrays["local_rotations_aa"], np.float32)}
    take = tk.read_take(tk.write_take(tmp_path / "clip.take.npz", stored, {}))
    assert take["local_rotations_aa"].dtype == np.float32
    np.testing.assert_array_equal(take["local_rotations_aa"], arrays["local_rotations_aa"].astype(np.float32))
    wrong = {**arrays, "bone_fitted": tk.Stored(arrays["bone_fitted"], np.float32)}   # kinds are still checked
    with pytest.raises(tk.TakeError, match="bone_fitted"):
        tk.write_take(tmp_path / "bad.take.npz", wrong, {})
