"""Bone maps: the built-in TOML files, presets written and read back, namespace-tolerant matching, detection."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rigs import bonemap, humanoid

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"


def test_every_builtin_map_is_valid_and_respects_the_canonical_hierarchy():
    maps = bonemap.builtin_maps()
    assert "anny" in maps
    for map_id, m in maps.items():
        assert m.id == map_id and m.builtin and m.name
        assert set(m.bones) <= set(humanoid.NAMES)
        assert len(set(m.bones.values())) == len(m.bones), map_id


def test_humanoid_vocabulary_is_consistent():
    assert len(set(humanoid.NAMES)) == len(humanoid.NAMES)
    seen: set[str] = set()
    for name, parent in humanoid.JOINTS:
        assert parent is None or parent in seen, name  # parents first
        seen.add(name)
        for aim in humanoid.AIM[name]:
            assert aim in humanoid.PARENT
        assert humanoid.mirror_name(humanoid.mirror_name(name)) == name
    assert humanoid.mapped_parent("upper_chest", {"hips", "spine"}) == "spine"
    assert humanoid.aim_of("hand.L", {"index_1.L", "ring_1.L"}) == "ring_1.L"


def test_save_and_load_round_trip(tmp_path):
    m = bonemap.BoneMap(id="my_rig", name='My "rig"', description="line one\nline two",
                        bones={"hips": "Pelvis", "upper_arm.L": "Arm:Upper L", "head": "Head"},
                        translation_bone="Root",
                        properties=(bonemap.PropertyKey("arm_parent.L", "IK_FK", 1.0),),
                        effective_parents={"Arm:Upper L": "Chest"})
    path = bonemap.save(m, tmp_path)
    assert path == tmp_path / "my_rig.toml"
    back = bonemap.load(path)
    assert (back.id, back.name, back.description, back.translation_bone) == (m.id, m.name, m.description, "Root")
    assert dict(back.bones) == dict(m.bones)
    assert back.properties == m.properties and dict(back.effective_parents) == dict(m.effective_parents)
    assert "hips = \"Pelvis\"" in path.read_text()
    with pytest.raises(bonemap.MapError, match="already exists"):
        bonemap.save(m, tmp_path)
    bonemap.save(m.with_bones({"hips": "Hips2"}), tmp_path, overwrite=True)
    assert bonemap.load(path).bones == {"hips": "Hips2"}
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("text, message", [
    ("[bones]\nhips = 'a'\n", "missing the \\[rig\\] table"),
    ("[rig]\nid = 'x'\n", "\\[bones\\] table is missing"),
    ("[rig]\nid = 'x'\n[bones]\nhand_l = 'a'\n", "'hand_l' is not a canonical joint"),
    ("[rig]\nid = 'x'\n[bones]\nhips = 'a'\nspine = 'a'\n", "mapped to both"),
    ("[rig]\nid = 'bad id!'\n[bones]\nhips = 'a'\n", "rig.id must be"),
    ("[rig\nid = 'x'", "not a readable TOML"),
    ("[rig]\nid = 'x'\n[bones]\nhips = 'a'\n[[properties]]\nbone = 'b'\n", "properties\\[0\\] needs"),
])
def test_malformed_maps_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(bonemap.MapError, match=message) as info:
        bonemap.load(path)
    assert str(path) in str(info.value)


def test_user_presets_override_builtins_and_broken_ones_are_reported(tmp_path):
    anny = bonemap.builtin_maps()["anny"]
    bonemap.save(anny.with_bones({"hips": "root"}, builtin=False, name="Anny (mine)"), tmp_path)
    (tmp_path / "zz_broken.toml").write_text("not toml [")
    errors: list[str] = []
    maps = bonemap.all_maps(tmp_path, errors)
    assert maps["anny"].name == "Anny (mine)" and not maps["anny"].builtin
    assert len(errors) == 1 and "zz_broken.toml" in errors[0]


def test_namespaced_bones_resolve():
    m = bonemap.BoneMap(id="m", name="m", bones={"hips": "Hips", "spine": "Spine"})
    found, missing = bonemap.resolve(m, ["mixamorig1:Hips", "mixamorig1:Spine", "Other"])
    assert found == {"hips": "mixamorig1:Hips", "spine": "mixamorig1:Spine"} and missing == []


@pytest.mark.skipif(not TRUTH.is_file(), reason="sample truth missing")
def test_detection_prefers_the_right_map_and_checks_the_hierarchy():
    d = np.load(TRUTH)
    names = [str(n) for n in d["bone_names"]]
    parents = {n: (names[p] if p >= 0 else None) for n, p in zip(names, d["bone_parents"])}
    ranked = bonemap.detect(names, parents, bonemap.builtin_maps().values())
    assert ranked[0].map.id in ("anny", "mpfb_default") and ranked[0].score > 0.99
    assert not ranked[0].missing and not ranked[0].hierarchy_errors
    # The same names under a broken hierarchy (an arm hung from the hips) score lower and say why.
    broken = dict(parents, **{"clavicle.L": "root"})
    match = bonemap.score(bonemap.builtin_maps()["anny"], names, broken)
    assert 0 < match.score < ranked[0].score
    assert any("shoulder.L" in e for e in match.hierarchy_errors)
