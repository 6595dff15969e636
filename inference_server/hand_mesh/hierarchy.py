"""The mesh hierarchy a spiral-convolution decoder runs over, built here from a hand template. numpy/scipy only.

MobRecon's decoder (Chen et al., CVPR 2022) starts from a few dozen coarse vertices and doubles the vertex count at
each level until the template's (778 for MANO): 49 → 98 → 195 → 389 → 778. It needs, per level,

* the **coarser mesh**: quadric-error decimation (Garland & Heckbert 1997) by *half-edge collapse*, so that every
  coarse vertex is one of the finer level's vertices (the COMA convention: down-sampling is a selection);
* the **up-sampling** from level l+1 to level l: each fine vertex is the closest point of the coarse surface to it,
  as barycentric weights on one coarse triangle — three (index, weight) pairs per fine vertex; a kept vertex is
  (itself, 1, 0, 0);
* the **spiral** of every vertex (Lim et al. 2018; Gong et al. 2019): the vertex, then its one-ring in cyclic order,
  then the next ring, ..., cut to a fixed length (9: a 3×3 "patch" for the depth-separable spiral convolution).

Quadric decimation with half-edge collapse: each vertex carries the sum Q of the plane quadrics
q = n̂n̂ᵀ (n̂ = [unit normal, −d], so pᵀqp is the squared distance of homogeneous p to the face's plane) of its
faces, plus heavily weighted planes through each boundary edge perpendicular to its face (the wrist opening keeps
its outline). Collapsing a into b costs b̄ᵀ(Q_a + Q_b)b̄ (b̄ = [b, 1]); the cheapest valid collapse is done first.
A collapse is refused when it would break the surface: the two vertices' shared neighbours must be exactly the
edge's opposite vertices (the link condition), a boundary vertex moves only along its boundary, and no face may
flip or collapse to a sliver.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from pathlib import Path

import numpy as np

SPIRAL_LENGTH = 9
BOUNDARY_WEIGHT = 100.0     # the boundary-edge planes' weight against the faces' planes (area-free quadrics)
MIN_NORMAL_DOT = 0.2        # a face whose normal turns by more than ~78° in a collapse refuses it


@dataclasses.dataclass(frozen=True, eq=False)
class MeshHierarchy:
    """Level 0 is the template; level l+1 is level l decimated to about half its vertices.

    ``up_index[l]`` / ``up_weight[l]`` (V_l, 3): level l's vertices from level l+1's (indices into level l+1).
    ``keep[l]`` (V_{l+1},): which level-l vertex each level-(l+1) vertex is. ``spirals[l]`` (V_l, SPIRAL_LENGTH).
    """

    vertices: list[np.ndarray]   # per level (V_l, 3) float32
    faces: list[np.ndarray]      # per level (F_l, 3) int64
    spirals: list[np.ndarray]    # per level (V_l, S) int64
    up_index: list[np.ndarray]   # per level except the last (V_l, 3) int64
    up_weight: list[np.ndarray]  # per level except the last (V_l, 3) float32
    keep: list[np.ndarray]       # per level except the last (V_{l+1},) int64

    @property
    def sizes(self) -> list[int]:
        return [int(v.shape[0]) for v in self.vertices]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"n_levels": np.array(len(self.vertices))}
        for name in ("vertices", "faces", "spirals", "up_index", "up_weight", "keep"):
            for level, arr in enumerate(getattr(self, name)):
                out[f"{name}_{level}"] = arr
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> "MeshHierarchy":
        n = int(data["n_levels"])
        get = lambda name, count: [np.asarray(data[f"{name}_{lv}"]) for lv in range(count)]  # noqa: E731
        h = cls(vertices=[v.astype(np.float32) for v in get("vertices", n)],
                faces=[f.astype(np.int64) for f in get("faces", n)],
                spirals=[s.astype(np.int64) for s in get("spirals", n)],
                up_index=[i.astype(np.int64) for i in get("up_index", n - 1)],
                up_weight=[w.astype(np.float32) for w in get("up_weight", n - 1)],
                keep=[k.astype(np.int64) for k in get("keep", n - 1)])
        h.validate()
        return h

    def validate(self) -> None:
        n = len(self.vertices)
        if n < 1 or len(self.faces) != n or len(self.spirals) != n or len(self.up_index) != n - 1:
            raise ValueError("a mesh hierarchy needs the same number of levels in every list")
        for lv in range(n):
            V = self.vertices[lv].shape[0]
            if self.faces[lv].min() < 0 or self.faces[lv].max() >= V or self.spirals[lv].shape[0] != V:
                raise ValueError(f"level {lv}: index out of range")
            if self.spirals[lv].min() < 0 or self.spirals[lv].max() >= V:
                raise ValueError(f"level {lv}: spiral index out of range")
        for lv in range(n - 1):
            Vc = self.vertices[lv + 1].shape[0]
            if self.up_index[lv].shape != (self.vertices[lv].shape[0], 3) or self.up_index[lv].max() >= Vc:
                raise ValueError(f"level {lv}: bad up-sampling")

    def save(self, path: str | Path) -> None:
        import io

        from ..take import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, **self.to_arrays())
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "MeshHierarchy":
        with np.load(path, allow_pickle=False) as z:
            return cls.from_arrays({k: z[k] for k in z.files})


# --- decimation -----------------------------------------------------------------------------------------------

def _face_planes(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """(F, 4) unit-normal planes [n, -n·p0] of the triangles (degenerate faces give zero planes)."""
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0.0)
    return np.concatenate([n, -(n * V[F[:, 0]]).sum(axis=1, keepdims=True)], axis=1)


def boundary_edges(F: np.ndarray) -> np.ndarray:
    """(E, 2) directed edges (as they run in their one face) that only one face holds."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return e[counts[inv.ravel()] == 1]


def _vertex_quadrics(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    planes = _face_planes(V, F)
    Q = np.zeros((V.shape[0], 4, 4))
    q = planes[:, :, None] * planes[:, None, :]
    for k in range(3):
        np.add.at(Q, F[:, k], q)
    # boundary: a plane through each boundary edge, perpendicular to its face
    edge_face = {}
    for fi, f in enumerate(F):
        for k in range(3):
            edge_face[(int(f[k]), int(f[(k + 1) % 3]))] = fi
    for a, b in boundary_edges(F):
        n_face = planes[edge_face[(int(a), int(b))], :3]
        d = V[b] - V[a]
        n = np.cross(d, n_face)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        p = np.append(n, -n @ V[a])
        qb = BOUNDARY_WEIGHT * np.outer(p, p)
        Q[a] += qb
        Q[b] += qb
    return Q


def decimate(V: np.ndarray, F: np.ndarray, n_target: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-edge-collapse quadric decimation of a manifold triangle mesh to `n_target` vertices.

    Returns (keep (n_target,) indices of the kept vertices, ascending; faces (F', 3) indexed into ``keep``).
    Raises ValueError when the mesh cannot be brought down that far without breaking it.
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    nV = V.shape[0]
    if not 4 <= n_target <= nV:
        raise ValueError(f"cannot decimate {nV} vertices to {n_target}")
    Q = _vertex_quadrics(V, F)
    faces = [list(map(int, f)) for f in F]
    face_alive = [True] * len(faces)
    vfaces: list[set[int]] = [set() for _ in range(nV)]
    for fi, f in enumerate(faces):
        for v in f:
            vfaces[v].add(fi)
    on_boundary = np.zeros(nV, dtype=bool)
    on_boundary[boundary_edges(F).ravel()] = True
    alive = np.ones(nV, dtype=bool)
    stamp = np.zeros(nV, dtype=np.int64)
    hom = np.concatenate([V, np.ones((nV, 1))], axis=1)

    def neighbours(v: int) -> set[int]:
        return {u for fi in vfaces[v] for u in faces[fi]} - {v}

    def is_boundary_edge(a: int, b: int) -> bool:
        return len(vfaces[a] & vfaces[b]) == 1

    def cost(a: int, b: int) -> float:
        """Moving a onto b (inf where the boundary forbids it)."""
        if on_boundary[a] and not (on_boundary[b] and is_boundary_edge(a, b)):
            return math.inf
        return float(hom[b] @ (Q[a] + Q[b]) @ hom[b])

    heap: list[tuple[float, int, int, int, int]] = []

    def push_edges_of(v: int) -> None:
        for u in neighbours(v):
            for a, b in ((v, u), (u, v)):
                c = cost(a, b)
                if c < math.inf:
                    heapq.heappush(heap, (c, a, b, int(stamp[a]), int(stamp[b])))

    for v in range(nV):
        push_edges_of(v)

    def collapse_ok(a: int, b: int) -> bool:
        shared_faces = vfaces[a] & vfaces[b]
        if len(shared_faces) not in (1, 2):
            return False
        opposite = {u for fi in shared_faces for u in faces[fi]} - {a, b}
        if neighbours(a) & neighbours(b) != opposite:
            return False
        if on_boundary[a] and on_boundary[b] and len(shared_faces) != 1:
            return False
        for fi in vfaces[a] - shared_faces:
            f = faces[fi]
            p_old = V[f]
            p_new = np.array([V[b] if v == a else V[v] for v in f])
            n_old = np.cross(p_old[1] - p_old[0], p_old[2] - p_old[0])
            n_new = np.cross(p_new[1] - p_new[0], p_new[2] - p_new[0])
            ln_old, ln_new = np.linalg.norm(n_old), np.linalg.norm(n_new)
            if ln_new < 1e-12 or (ln_old > 1e-12 and n_old @ n_new < MIN_NORMAL_DOT * ln_old * ln_new):
                return False
        return True

    n_alive = nV
    while n_alive > n_target:
        if not heap:
            raise ValueError(f"decimation stopped at {n_alive} vertices (target {n_target}): no valid collapse left")
        c, a, b, sa, sb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or sa != stamp[a] or sb != stamp[b]:
            continue
        if not collapse_ok(a, b):
            continue
        for fi in vfaces[a] & vfaces[b]:
            face_alive[fi] = False
            for v in faces[fi]:
                vfaces[v].discard(fi)
        for fi in list(vfaces[a]):
            faces[fi] = [b if v == a else v for v in faces[fi]]
            vfaces[b].add(fi)
        vfaces[a].clear()
        alive[a] = False
        Q[b] += Q[a]
        n_alive -= 1
        stamp[b] += 1
        for u in neighbours(b):
            stamp[u] += 1
        push_edges_of(b)
        for u in neighbours(b):
            push_edges_of(u)

    keep = np.flatnonzero(alive)
    remap = np.full(nV, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.shape[0])
    new_faces = remap[np.array([f for f, ok in zip(faces, face_alive) if ok], dtype=np.int64)]
    return keep, new_faces


# --- up-sampling ------------------------------------------------------------------------------------------------

def closest_barycentric(P: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle (A, B, C: (T, 3)) to each point P (N, 3), as barycentric weights.

    Returns (weights (N, T, 3), squared distances (N, T)). Region tests after Ericson, *Real-Time Collision
    Detection* §5.1.5: the closest point is a vertex, a point of an edge, or the inside projection.
    """
    P = P[:, None, :]
    ab, ac = (B - A)[None], (C - A)[None]
    ap, bp, cp = P - A[None], P - B[None], P - C[None]
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    N, T = d1.shape
    w = np.zeros((N, T, 3))
    done = np.zeros((N, T), dtype=bool)

    def put(mask: np.ndarray, wa, wb, wc) -> None:
        m = mask & ~done
        for k, val in enumerate((wa, wb, wc)):
            w[..., k] = np.where(m, val, w[..., k])
        done[...] = done | m

    eps = 1e-30
    put((d1 <= 0) & (d2 <= 0), 1.0, 0.0, 0.0)                                    # vertex A
    put((d3 >= 0) & (d4 <= d3), 0.0, 1.0, 0.0)                                   # vertex B
    t = d1 / np.where(np.abs(d1 - d3) > eps, d1 - d3, eps)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - t, t, 0.0)                       # edge AB
    put((d6 >= 0) & (d5 <= d6), 0.0, 0.0, 1.0)                                   # vertex C
    t = d2 / np.where(np.abs(d2 - d6) > eps, d2 - d6, eps)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - t, 0.0, t)                       # edge AC
    den = (d4 - d3) + (d5 - d6)
    t = (d4 - d3) / np.where(np.abs(den) > eps, den, eps)
    put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), 0.0, 1 - t, t)         # edge BC
    den = va + vb + vc
    den = np.where(np.abs(den) > eps, den, eps)
    put(np.ones_like(done), 1 - (vb + vc) / den, vb / den, vc / den)             # inside
    closest = w[..., :1] * A[None] + w[..., 1:2] * B[None] + w[..., 2:] * C[None]
    return w, ((closest - P) ** 2).sum(-1)


def upsampling(V_fine: np.ndarray, V_coarse: np.ndarray, F_coarse: np.ndarray, keep: np.ndarray,
               chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(index (V_fine, 3), weight (V_fine, 3)): each fine vertex as a point of the nearest coarse triangle."""
    A, B, C = (V_coarse[F_coarse[:, k]] for k in range(3))
    index = np.zeros((V_fine.shape[0], 3), dtype=np.int64)
    weight = np.zeros((V_fine.shape[0], 3), dtype=np.float64)
    for s in range(0, V_fine.shape[0], chunk):
        w, d2 = closest_barycentric(V_fine[s:s + chunk], A, B, C)
        best = d2.argmin(axis=1)
        index[s:s + chunk] = F_coarse[best]
        weight[s:s + chunk] = w[np.arange(best.shape[0]), best]
    # a kept vertex is exactly itself (its own triangle's corner, up to rounding)
    own = np.zeros((keep.shape[0], 3), dtype=np.int64)
    own[:, 0] = np.arange(keep.shape[0])
    own[:, 1:] = index[keep][:, 1:]
    index[keep] = own
    weight[keep] = np.array([1.0, 0.0, 0.0])
    return index, weight.astype(np.float32)


# --- spirals ------------------------------------------------------------------------------------------------------

def _one_rings(n_vertices: int, F: np.ndarray) -> list[list[int]]:
    """Each vertex's neighbours in the faces' winding order (a boundary vertex's fan starts at its open side)."""
    nxt: list[dict[int, int]] = [dict() for _ in range(n_vertices)]
    for f in F:
        for k in range(3):
            v, x, y = int(f[k]), int(f[(k + 1) % 3]), int(f[(k + 2) % 3])
            nxt[v][x] = y
    rings = []
    for v in range(n_vertices):
        links = nxt[v]
        if not links:
            rings.append([])
            continue
        targets = set(links.values())
        starts = [x for x in links if x not in targets]
        start = min(starts) if starts else min(links)
        ring, x = [start], start
        while x in links and links[x] not in ring:
            x = links[x]
            ring.append(x)
        ring += sorted(set(links) - set(ring))   # a non-manifold leftover, if any, in index order
        rings.append(ring)
    return rings


def spirals(V: np.ndarray, F: np.ndarray, length: int = SPIRAL_LENGTH) -> np.ndarray:
    """(V, length) spiral of every vertex: itself, its one-ring in winding order, then each further ring in the order
    its vertices are reached from the previous ring's (each visited in winding order, starting after a
    previous-ring neighbour). Where the mesh runs out, the nearest vertices by distance fill the spiral."""
    from scipy.spatial import cKDTree

    n = V.shape[0]
    rings = _one_rings(n, F)
    tree = None
    out = np.zeros((n, length), dtype=np.int64)
    for v in range(n):
        seq = [v]
        seen = {v}
        last = [u for u in rings[v] if u not in seen]
        while last and len(seq) < length:
            seq += last
            seen.update(last)
            nxt = []
            for u in last:
                ring = rings[u]
                start = next((i + 1 for i, x in enumerate(ring) if x in seen and x not in nxt), 0)
                for x in ring[start:] + ring[:start]:
                    if x not in seen and x not in nxt:
                        nxt.append(x)
            last = nxt
        if len(seq) < length:
            if tree is None:
                tree = cKDTree(V)
            _, near = tree.query(V[v], k=min(n, length + len(seq)))
            seq += [int(u) for u in np.atleast_1d(near) if int(u) not in seen]
            seq += [v] * max(0, length - len(seq))
        out[v] = seq[:length]
    return out


# --- the hierarchy ------------------------------------------------------------------------------------------------

def build_hierarchy(V: np.ndarray, F: np.ndarray, n_down: int = 4, factor: float = 2.0,
                    spiral_length: int = SPIRAL_LENGTH) -> MeshHierarchy:
    """Level 0 = (V, F); each next level keeps ceil(V_l / factor) vertices (778 → 389 → 195 → 98 → 49)."""
    verts = [np.asarray(V, dtype=np.float64)]
    faces = [np.asarray(F, dtype=np.int64)]
    keeps, up_i, up_w = [], [], []
    for _ in range(n_down):
        target = math.ceil(verts[-1].shape[0] / factor)
        keep, Fc = decimate(verts[-1], faces[-1], target)
        Vc = verts[-1][keep]
        i, w = upsampling(verts[-1], Vc, Fc, keep)
        keeps.append(keep)
        up_i.append(i)
        up_w.append(w)
        verts.append(Vc)
        faces.append(Fc)
    return MeshHierarchy(vertices=[v.astype(np.float32) for v in verts], faces=faces,
                         spirals=[spirals(v, f, spiral_length) for v, f in zip(verts, faces)],
                         up_index=up_i, up_weight=up_w, keep=keeps)
