"""The mesh hierarchy for the spiral decoder (inference_server/hand_mesh/hierarchy.py), on synthetic meshes whose
answers are known: a closed sphere and an open tube (a hand is open at the wrist)."""
from __future__ import annotations

import numpy as np
import pytest

from inference_server.hand_mesh import hierarchy as H


def uv_sphere(n_lat: int = 12, n_lon: int = 24) -> tuple[np.ndarray, np.ndarray]:
    verts = [[0.0, 0.0, 1.0]]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
    verts.append([0.0, 0.0, -1.0])
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    faces = [[0, ring(1, j), ring(1, j + 1)] for j in range(n_lon)]
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            faces += [[a, b, c], [a, c, d]]
    last = len(verts) - 1
    faces += [[last, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)] for j in range(n_lon)]
    return np.array(verts), np.array(faces)


def tube(n_rings: int = 20, n_around: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """An open cylinder of radius 1, length 3 (two boundary loops)."""
    ang = 2 * np.pi * np.arange(n_around) / n_around
    verts = np.array([[np.cos(a), np.sin(a), 3.0 * i / (n_rings - 1)] for i in range(n_rings) for a in ang])
    faces = []
    for i in range(n_rings - 1):
        for j in range(n_around):
            a, b = i * n_around + j, i * n_around + (j + 1) % n_around
            c, d = a + n_around, b + n_around
            faces += [[a, b, d], [a, d, c]]
    return verts, np.array(faces)


def edge_counts(F: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)[1]


@pytest.mark.parametrize("make", [uv_sphere, tube])
def test_decimation_keeps_a_manifold_surface_of_the_asked_size(make):
    V, F = make()
    n_boundary = len(H.boundary_edges(F))
    keep, Fc = H.decimate(V, F, V.shape[0] // 2)
    assert keep.shape == (V.shape[0] // 2,) and np.all(np.diff(keep) > 0)
    assert np.array_equal(np.unique(Fc), np.arange(keep.shape[0]))     # every kept vertex is in a face
    counts = edge_counts(Fc)
    assert counts.max() <= 2                                            # manifold: no edge in three faces
    if n_boundary == 0:
        assert counts.min() == 2                                        # the sphere stays closed
        # Euler characteristic of a sphere: V - E + F = 2
        assert keep.shape[0] - counts.shape[0] + Fc.shape[0] == 2
    else:
        assert 0 < int((counts == 1).sum()) <= n_boundary               # the openings stay open
    # the kept vertices are the originals, on the unit sphere / cylinder
    Vc = V[keep]
    if make is uv_sphere:
        assert np.allclose(np.linalg.norm(Vc, axis=1), 1.0)
    else:
        assert np.allclose(np.linalg.norm(Vc[:, :2], axis=1), 1.0)
    # no face flipped: the coarse faces still face outwards (away from the axis / centre)
    centre = Vc[Fc].mean(axis=1)
    normal = np.cross(Vc[Fc[:, 1]] - Vc[Fc[:, 0]], Vc[Fc[:, 2]] - Vc[Fc[:, 0]])
    outward = centre if make is uv_sphere else centre * np.array([1.0, 1.0, 0.0])
    assert np.all((normal * outward).sum(axis=1) > 0)


def test_decimation_refuses_an_impossible_target():
    V, F = uv_sphere()
    with pytest.raises(ValueError):
        H.decimate(V, F, 2)


def test_closest_barycentric_matches_known_points():
    A, B, C = np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0]])
    P = np.array([[0.25, 0.25, 1.0],    # above the inside: its projection
                  [-1.0, -1.0, 0.0],    # beyond A: vertex A
                  [0.5, -2.0, 0.0],     # below edge AB: its middle
                  [1.0, 1.0, 0.0],      # beyond edge BC: its middle
                  [3.0, -0.5, 0.0]])    # beyond B: vertex B
    w, d2 = H.closest_barycentric(P, A, B, C)
    expect = np.array([[0.5, 0.25, 0.25], [1, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 1, 0]])
    assert np.allclose(w[:, 0], expect)
    assert np.allclose(d2[:, 0], [1.0, 2.0, 4.0, 0.5, 4.25])


def test_upsampling_rebuilds_the_kept_vertices_exactly_and_the_rest_from_the_coarse_surface():
    V, F = uv_sphere(16, 32)
    keep, Fc = H.decimate(V, F, V.shape[0] // 2)
    index, weight = H.upsampling(V, V[keep], Fc, keep)
    rebuilt = (V[keep][index] * weight[..., None]).sum(axis=1)
    assert np.allclose(rebuilt[keep], V[keep], atol=1e-6)
    assert np.allclose(weight.sum(axis=1), 1.0, atol=1e-5) and weight.min() >= -1e-6
    # the others lie on the coarse surface, inside the unit sphere and near it (a chord's sagitta)
    r = np.linalg.norm(rebuilt, axis=1)
    assert r.max() <= 1.0 + 1e-6 and r.min() > 0.9


def test_spirals_start_with_the_vertex_then_its_ring_in_winding_order():
    V, F = tube()
    S = H.spirals(V, F, 9)
    assert S.shape == (V.shape[0], 9)
    assert np.array_equal(S[:, 0], np.arange(V.shape[0]))
    neighbours = [set() for _ in range(V.shape[0])]
    for f in F:
        for k in range(3):
            neighbours[f[k]].update({int(f[(k + 1) % 3]), int(f[(k + 2) % 3])})
    for v in range(V.shape[0]):
        ring = neighbours[v]
        assert set(S[v, 1:1 + len(ring)]) == ring                     # the whole one-ring first
        assert len(set(S[v])) == 9                                    # no repeats on a mesh this size
        # consecutive ring members share a face (winding order), for an interior vertex
        if len(ring) == 6:
            seq = list(S[v, 1:7])
            for a, b in zip(seq, seq[1:] + seq[:1]):
                assert b in neighbours[a]


def test_hierarchy_halves_each_level_and_round_trips_through_a_file(tmp_path):
    V, F = uv_sphere(14, 28)
    h = H.build_hierarchy(V, F, n_down=3)
    sizes = [V.shape[0]]
    for _ in range(3):
        sizes.append(-(-sizes[-1] // 2))
    assert h.sizes == sizes
    for lv in range(3):
        assert np.array_equal(h.vertices[lv + 1], h.vertices[lv][h.keep[lv]])
    h.save(tmp_path / "h.npz")
    back = H.MeshHierarchy.load(tmp_path / "h.npz")
    assert back.sizes == h.sizes
    assert all(np.array_equal(a, b) for a, b in zip(back.spirals, h.spirals))
    assert all(np.array_equal(a, b) for a, b in zip(back.up_index, h.up_index))
