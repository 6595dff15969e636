"""The user's licensed model files: found by their official names, read from .npz and chumpy .pkl without chumpy and
without running pickled code, and refused with a message naming the file, the problem and the fix."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from synthetic_models import write_model_file

from inference_server.model_files import find_model_file, read_model_file
from inference_server.protocol import MODEL_MISSING, RpcError


def test_finds_official_names_in_the_folder_or_its_subfolder(tmp_path):
    path = write_model_file(tmp_path, "smplx", "npz")
    assert find_model_file("smplx", tmp_path) == path
    moved = tmp_path / path.name
    path.rename(moved)
    assert find_model_file("smplx", tmp_path) == moved
    right = write_model_file(tmp_path, "mano", "pkl", side="right")
    assert find_model_file("mano", tmp_path, side="right") == right


def test_missing_file_names_what_and_where(tmp_path):
    with pytest.raises(RpcError) as err:
        find_model_file("smplh", tmp_path)
    e = err.value
    assert e.code == MODEL_MISSING
    assert "SMPLH_NEUTRAL" in e.message and str(tmp_path) in e.message
    assert "mano.is.tue.mpg.de" in e.fix and str(tmp_path / "smplh") in e.fix and "Anny" in e.fix
    with pytest.raises(RpcError) as err:
        find_model_file("smpl", None)
    assert "no model folder" in err.value.message
    with pytest.raises(RpcError) as err:
        find_model_file("smpl", tmp_path / "nowhere")
    assert "does not exist" in err.value.message


def test_pkl_loads_without_chumpy_installed(tmp_path):
    path = write_model_file(tmp_path, "mano", "pkl")
    with pytest.raises(ImportError):
        __import__("chumpy")
    data = read_model_file(path, "mano")
    assert data["shapedirs"].shape == (778, 3, 10) and data["shapedirs"].dtype.kind == "f"
    assert data["J_regressor"].shape == (16, 778)           # densified from the scipy sparse matrix
    assert np.allclose(data["J_regressor"].sum(1), 1.0)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused_and_named(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"v_template": np.zeros((4, 3)), "payload": _Evil()}, fh, protocol=2)
    with pytest.raises(RpcError) as err:
        read_model_file(path, "smpl")
    assert "refusing to load posix.system" in err.value.message or "refusing to load os.system" in err.value.message
    assert str(path) in err.value.message


@pytest.mark.parametrize("problem", ["missing-array", "wrong-shape", "wrong-model", "truncated", "not-a-model"])
def test_wrong_files_are_refused_with_the_reason(tmp_path, problem):
    path = write_model_file(tmp_path, "smpl", "npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    kind = "smpl"
    if problem == "missing-array":
        del arrays["J_regressor"]
        np.savez(path, **arrays)
        expect = "no 'J_regressor'"
    elif problem == "wrong-shape":
        arrays["weights"] = arrays["weights"][:, :20]
        np.savez(path, **arrays)
        expect = "'weights' has shape"
    elif problem == "wrong-model":
        kind = "mano"
        expect = "no 'hands_components'"
    elif problem == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
        expect = "not a readable SMPL model file"
    else:
        path.write_text("hello")
        expect = "not a readable SMPL model file"
    with pytest.raises(RpcError) as err:
        read_model_file(path, kind)
    assert err.value.code == MODEL_MISSING
    assert expect in err.value.message and str(path) in err.value.message
    assert err.value.fix


def test_object_arrays_in_npz_are_never_unpickled(tmp_path):
    """Official SMPL-X .npz files carry object arrays (joint2num, part2num); they are skipped, not unpickled."""
    path = write_model_file(tmp_path, "smplx", "npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["joint2num"] = np.array({"pelvis": 0}, dtype=object)
    np.savez(path, **arrays)
    data = read_model_file(path, "smplx")
    assert "joint2num" not in data and data["v_template"].shape == (10475, 3)
