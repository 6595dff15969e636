"""Per-frame camera rotation (pan / tilt / roll) from the background of a video, people masked out.
numpy + OpenCV + scipy only: no bpy, no torch, no GPU.

Streaming: ``CameraTracker.add`` is called once per decoded frame and keeps only the previous frame, one keyframe
(both gray, at the working resolution), their corner lists and a few numbers per frame, so clips may be hours long.
``finish`` returns a ``CameraMotion``.

Conventions (DESIGN §2)
-----------------------
OpenCV camera axes (x right, y down, z forward); ``K`` is the 3×3 intrinsics in pixels of the FULL-resolution frame;
image size is (width, height). ``R_cam_from_cam0[t]`` maps a direction in frame 0's camera coordinates into frame t's:

    d_t = R_cam_from_cam0[t] d_0            so   R_world2cam[t] = R_cam_from_cam0[t] @ R_world2cam[0]

For a camera that only rotates (or a background far away compared with the camera's translation) a background pixel
moves as the infinite homography

    x_t ~ K R K⁻¹ x_{t−1},    R = R_cam_from_cam0[t] R_cam_from_cam0[t−1]ᵀ

so with unit bearings b = K⁻¹x / |K⁻¹x| the pairs obey b_t = R b_{t−1}, and R is the Kabsch / orthogonal-Procrustes
solution over the RANSAC inliers (``method="bearing"``, the default), or the rotation nearest to K⁻¹HK for a
RANSAC homography H (``method="homography"``: 3–6× larger errors in the tests).

Method
------
1. Shi–Tomasi corners (``cv2.goodFeaturesToTrack``) of each frame outside the person mask (each person's box grown by
   ``mask_grow`` and ``mask_pad_px``).
2. Frame to frame: pyramidal Lucas–Kanade (``cv2.calcOpticalFlowPyrLK``) from frame t−1 into t, started at the
   positions the last frame-to-frame rotation predicts, with a forward–backward check; points landing in the person
   mask or outside the image are dropped; R_{t←t−1} by RANSAC.
3. Against the keyframe: the keyframe's corners are tracked straight into frame t (started where the step-2 estimate
   puts them) and R_{t←key} by RANSAC, so drift grows per keyframe, not per frame. The keyframe moves to the current
   frame once the camera turned more than ``key_max_deg`` from it or fewer than ``key_min_frac`` of its corners
   remain inliers. A keyframe result that disagrees with step 2 by more than ``key_agree_deg`` is not used.
4. A frame with fewer than ``min_points`` inliers in both is unreliable: its rotation is held while streaming and
   slerped between the reliable neighbours in ``finish`` (held after the last one).
5. Static camera: when every frame is within ``static_deg`` of frame 0 and the median background flow is below
   ``static_flow_px`` (full-resolution pixels), the camera did not move and every rotation is the identity.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

PersonPoints = np.ndarray | Sequence[np.ndarray] | None


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angle in degrees of Raᵀ Rb (the rotation taking Ra to Rb); broadcasts over leading axes (..., 3, 3)."""
    Ra, Rb = np.asarray(Ra, dtype=np.float64), np.asarray(Rb, dtype=np.float64)
    # ‖Ra − Rb‖_F = 2√2 sin(θ/2): exact near θ = 0, where arccos((tr − 1)/2) loses half the digits
    chord = np.linalg.norm(Ra - Rb, axis=(-2, -1)) / (2.0 * np.sqrt(2.0))
    return np.degrees(2.0 * np.arcsin(np.clip(chord, 0.0, 1.0)))


@dataclasses.dataclass
class CameraMotion:
    """The camera's rotation over a clip (see the module docstring for the convention)."""

    R_cam_from_cam0: np.ndarray  # (T, 3, 3)
    static: bool  # True when the background was seen and did not move (then every R is the identity)
    inliers: np.ndarray  # (T,) int: background inliers behind frame t's rotation, the larger of t−1 → t and
    #                      keyframe → t (0 at t = 0)
    reliable: np.ndarray  # (T,) bool: False where too few background points (rotation interpolated / held there)
    median_flow_px: np.ndarray  # (T,) float: median background flow t−1 → t, full-resolution pixels (0 at t = 0)

    def R_world2cam(self, R_world2cam0: np.ndarray) -> np.ndarray:
        """(T, 3, 3) world-to-camera rotations given frame 0's: R_cam_from_cam0[t] @ R_world2cam0."""
        return self.R_cam_from_cam0 @ np.asarray(R_world2cam0, dtype=np.float64)

    def as_dict(self, prefix: str = "camera_") -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickles)."""
        return {prefix + "R_cam_from_cam0": self.R_cam_from_cam0, prefix + "static": np.array(self.static),
                prefix + "inliers": self.inliers, prefix + "reliable": self.reliable,
                prefix + "median_flow_px": self.median_flow_px}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "camera_") -> "CameraMotion":
        """Inverse of ``as_dict`` (accepts an ``np.load`` result)."""
        return cls(R_cam_from_cam0=np.asarray(d[prefix + "R_cam_from_cam0"], dtype=np.float64),
                   static=bool(d[prefix + "static"]), inliers=np.asarray(d[prefix + "inliers"], dtype=np.int64),
                   reliable=np.asarray(d[prefix + "reliable"], dtype=bool),
                   median_flow_px=np.asarray(d[prefix + "median_flow_px"], dtype=np.float64))


def _kabsch(b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Rotation(s) R minimising Σ|b1 − R b0|²; b0, b1 (..., N, 3) → (..., 3, 3)."""
    M = np.swapaxes(b1, -1, -2) @ b0  # Σ b1 b0ᵀ
    U, _, Vt = np.linalg.svd(M)
    D = np.ones(M.shape[:-1])
    D[..., 2] = np.sign(np.linalg.det(U @ Vt))  # no reflections
    return (U * D[..., None, :]) @ Vt


class _Series:
    """A growing per-frame array (amortised doubling), so hours of frames cost a few bytes each."""

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        self.a = np.zeros((64, *shape), dtype=dtype)
        self.n = 0

    def append(self, value) -> None:
        if self.n == len(self.a):
            self.a = np.concatenate([self.a, np.zeros_like(self.a)])
        self.a[self.n] = value
        self.n += 1

    def get(self) -> np.ndarray:
        return self.a[:self.n].copy()


class CameraTracker:
    """Streaming camera-rotation estimator; ``add`` every frame in order, then ``finish``."""

    def __init__(self, K: np.ndarray, image_size: tuple[int, int], max_side: int = 640, *,
                 method: Literal["bearing", "homography"] = "bearing", keyframes: bool = True,
                 max_corners: int = 400, min_points: int = 20, ransac_px: float = 1.5, fb_px: float = 0.5,
                 mask_grow: float = 0.25, mask_pad_px: float = 10.0, key_max_deg: float = 10.0,
                 key_min_frac: float = 0.4, key_agree_deg: float = 2.0, prior_bias: float = 1.5,
                 static_deg: float = 0.15, static_flow_px: float = 0.3, seed: int = 0) -> None:
        """K: (3, 3) full-resolution intrinsics; image_size: full-resolution (width, height); frames are tracked at
        ``max_side`` pixels on their long side (never upscaled). The other options are the thresholds of the module
        docstring (pixel thresholds ``ransac_px``, ``fb_px`` at the working resolution)."""
        W, H = int(image_size[0]), int(image_size[1])
        s = min(1.0, max_side / max(W, H))
        self.work_size = (max(1, round(W * s)), max(1, round(H * s)))  # (w, h) tracked at
        sx, sy = self.work_size[0] / W, self.work_size[1] / H
        self.full_size = (W, H)
        # full-res pixel → working pixel, pixel centres kept (as cv2.resize does): x_w = (x + ½) s − ½
        self._S = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        self.K = self._S @ np.asarray(K, dtype=np.float64)  # working-resolution intrinsics
        self._Kinv = np.linalg.inv(self.K)
        self._flow_scale = 2.0 / (sx + sy)  # working px → full-res px
        self.method, self.keyframes = method, keyframes
        self.min_points, self.ransac_px, self.fb_px = min_points, ransac_px, fb_px
        self.mask_grow, self.mask_pad_px = mask_grow, mask_pad_px
        self.key_max_deg, self.key_min_frac, self.key_agree_deg = key_max_deg, key_min_frac, key_agree_deg
        self.static_deg, self.static_flow_px, self.prior_bias = static_deg, static_flow_px, prior_bias
        self._max_corners, self._grid = max_corners, (6, 4)
        self._min_distance = max(4, round(max(self.work_size) / 80))
        # LK: 21×21 windows / 30 iterations were 1.7× slower and no more accurate in the tests
        self._lk_criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03)
        self._rng = np.random.default_rng(seed)
        # streaming state: previous frame and keyframe (gray, working size) and their background corners (N, 2)
        self._prev: np.ndarray | None = None
        self._prev_pts = np.zeros((0, 2), np.float32)
        self._key: np.ndarray | None = None
        self._key_pts = np.zeros((0, 2), np.float32)
        self._key_R = np.eye(3)  # R_cam_from_cam0 of the keyframe
        self._key_n0 = 0  # corners the keyframe started with
        self._R = np.eye(3)  # R_cam_from_cam0 of the previous frame
        self._R_step = np.eye(3)  # last frame-to-frame rotation (the motion prior)
        self._out_R = _Series((3, 3), np.float64)
        self._out_inliers = _Series((), np.int64)
        self._out_reliable = _Series((), bool)
        self._out_flow = _Series((), np.float64)

    # ---- per frame -------------------------------------------------------------------------------------------
    def add(self, frame_bgr_or_gray: np.ndarray, person_points_px: PersonPoints) -> None:
        """One frame, in order: full-resolution BGR (or RGB: the order only changes the gray weights) or gray
        (any resolution of the same aspect is accepted; it is resized to the working size).

        person_points_px: full-resolution pixel points of every detected person / hand in this frame — one (N, 2)
        array (one box around all of them), a (P, N, 2) array or a list of (N_i, 2) arrays (one box per person);
        NaN rows allowed, None = nobody. Each box, grown by ``mask_grow`` and ``mask_pad_px``, is masked out of the
        corners and of the flow's inliers."""
        img = np.asarray(frame_bgr_or_gray)
        if img.dtype != np.uint8:
            raise ValueError(f"camera tracking needs uint8 frames (got {img.dtype}); pass the decoded 8-bit frame")
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 and img.shape[2] == 3 else (
            cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY) if img.ndim == 3 else img)
        if (gray.shape[1], gray.shape[0]) != self.work_size:
            gray = cv2.resize(gray, self.work_size, interpolation=cv2.INTER_AREA)
        boxes = self._boxes(person_points_px)

        t = self._out_R.n
        R, inliers, reliable, flow = self._R, 0, False, 0.0
        if t > 0:
            assert self._prev is not None and self._key is not None
            # frame to frame, started where the last step's rotation puts the points
            n_f2f, R_step, f = self._register(self._prev, self._prev_pts, gray, boxes, self._R_step)
            ok_f2f = n_f2f >= self.min_points
            if ok_f2f:
                R, self._R_step, inliers, flow = R_step @ self._R, R_step, n_f2f, f
            else:
                self._R_step = np.eye(3)  # no motion prior across a gap; rotation held
            # keyframe to this frame (skipped when the keyframe is the previous frame: same answer)
            key_used, n_key = False, 0
            if self._key is self._prev:
                key_used, n_key = ok_f2f, n_f2f
            elif self.keyframes and len(self._key_pts) >= self.min_points:
                n_key, R_kt, _ = self._register(self._key, self._key_pts, gray, boxes, R @ self._key_R.T)
                R_key = R_kt @ self._key_R
                if n_key >= self.min_points and (
                        not ok_f2f or rotation_angle_deg(R_key, R) < self.key_agree_deg):
                    R, inliers, key_used = R_key, max(inliers, n_key), True
                    if ok_f2f:  # the step prior, made consistent with the keyframe result
                        self._R_step = R @ self._R.T
            reliable = ok_f2f or key_used
            if key_used and n_key < self.key_min_frac * self._key_n0:
                key_used = False  # too few keyframe corners left: re-key below
        corners = self._corners(gray, boxes)
        if t == 0:
            reliable = len(corners) >= self.min_points
        # new keyframe: the first frame, and then a reliable frame the keyframe no longer serves
        if t == 0 or (reliable and (not key_used or rotation_angle_deg(R, self._key_R) > self.key_max_deg)):
            self._key, self._key_pts, self._key_R, self._key_n0 = gray, corners, R, len(corners)
        self._prev, self._prev_pts, self._R = gray, corners, R
        self._out_R.append(R)
        self._out_inliers.append(inliers)
        self._out_reliable.append(reliable)
        self._out_flow.append(flow)

    def _boxes(self, pts: PersonPoints) -> np.ndarray:
        """Grown person boxes at the working resolution, (P, 4) as x0, y0, x1, y1."""
        if pts is None:
            return np.zeros((0, 4))
        if isinstance(pts, np.ndarray):
            groups = list(pts) if pts.ndim == 3 else [pts]
        else:
            groups = [np.asarray(p, dtype=np.float64) for p in pts]
        out = []
        for g in groups:
            g = np.asarray(g, dtype=np.float64).reshape(-1, 2)
            g = g[np.isfinite(g).all(axis=1)]
            if len(g) == 0:
                continue
            (x0, y0), (x1, y1) = g.min(axis=0), g.max(axis=0)
            gx = 0.5 * self.mask_grow * (x1 - x0) + self.mask_pad_px  # each side: half the growth + the pad
            gy = 0.5 * self.mask_grow * (y1 - y0) + self.mask_pad_px
            c = np.array([[x0 - gx, y0 - gy, 1], [x1 + gx, y1 + gy, 1]]) @ self._S.T
            out.append([c[0, 0], c[0, 1], c[1, 0], c[1, 1]])
        return np.array(out).reshape(-1, 4)

    def _outside(self, p: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N,) True for points inside the image and outside every box."""
        w, h = self.work_size
        ok = (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] <= h - 1)
        for x0, y0, x1, y1 in boxes:
            ok &= ~((p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1))
        return ok

    def _corners(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        mask = None
        if len(boxes):
            mask = np.full(gray.shape, 255, np.uint8)
            for x0, y0, x1, y1 in boxes:
                mask[max(0, int(np.floor(y0))):max(0, int(np.ceil(y1)) + 1),
                     max(0, int(np.floor(x0))):max(0, int(np.ceil(x1)) + 1)] = 0
        c = cv2.goodFeaturesToTrack(gray, 4 * self._max_corners, 0.01, self._min_distance, mask=mask, blockSize=7)
        if c is None:
            return np.zeros((0, 2), np.float32)
        c = c.reshape(-1, 2).astype(np.float32)  # strongest first
        # spread over the image: at most max_corners / cells from each cell of a grid, the strongest of each, so a
        # sharp foreground (or one textured corner of the frame) cannot take every point
        gx, gy = self._grid
        w, h = self.work_size
        cell = np.minimum(c[:, 0] * gx // w, gx - 1) * gy + np.minimum(c[:, 1] * gy // h, gy - 1)
        order = np.argsort(cell, kind="stable")  # by cell, strength order kept inside each cell
        first = np.searchsorted(cell[order], cell[order], side="left")
        rank = np.empty(len(c), np.int64)
        rank[order] = np.arange(len(c)) - first  # 0 for the strongest corner of its cell, 1 for the next, ...
        return c[rank < max(1, self._max_corners // (gx * gy))]

    def _project(self, R: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Pixels p (N, 2) moved by the infinite homography K R K⁻¹ (the prediction for LK)."""
        x = np.c_[p, np.ones(len(p))] @ (self.K @ R @ self._Kinv).T
        z = x[:, 2:]
        return np.where(z > 1e-6, x[:, :2] / np.where(z > 1e-6, z, 1.0), p).astype(np.float32)

    def _register(self, img0: np.ndarray, p0: np.ndarray, img1: np.ndarray, boxes: np.ndarray,
                  R_guess: np.ndarray) -> tuple[int, np.ndarray, float]:
        """Track corners p0 of img0 into img1 and solve the rotation: (inliers, R_{1←0}, median flow full-res px)."""
        if len(p0) < self.min_points:
            return 0, np.eye(3), 0.0
        guess = self._project(R_guess, p0)
        p1, st = self._lk(img0, img1, p0, guess)
        pb, st_b = self._lk(img1, img0, p1, p0.copy())  # backward, for the forward-backward check
        keep = (st == 1) & (st_b == 1) & (np.linalg.norm(pb - p0, axis=1) < self.fb_px)
        keep &= self._outside(p1, boxes)
        a, b = p0[keep].astype(np.float64), p1[keep].astype(np.float64)
        if len(a) < self.min_points:
            return 0, np.eye(3), 0.0
        R, inl = self._solve(a, b, R_guess)
        n = int(inl.sum())
        flow = float(np.median(np.linalg.norm(b[inl] - a[inl], axis=1))) * self._flow_scale if n else 0.0
        return n, R, flow

    def _lk(self, img0: np.ndarray, img1: np.ndarray, p0: np.ndarray, guess: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Pyramidal Lucas–Kanade from ``guess``: (N, 2) float32 points of img1 and (N,) status."""
        p1, st, _ = cv2.calcOpticalFlowPyrLK(img0, img1, p0.reshape(-1, 1, 2), guess.reshape(-1, 1, 2),
                                             winSize=(15, 15), maxLevel=3, criteria=self._lk_criteria,
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        return np.asarray(p1, np.float32).reshape(-1, 2), np.asarray(st).ravel()

    def _solve(self, a: np.ndarray, b: np.ndarray, R_prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotation with b ~ K R K⁻¹ a (pixels (N, 2) each) and its inlier mask. ``R_prior`` (the predicted
        motion) is one of the hypotheses and wins unless another has ``prior_bias`` times its inliers: when a large
        unmasked foreground holds as many points as the background, the motion that continues the past is taken."""
        ba = np.c_[a, np.ones(len(a))] @ self._Kinv.T
        bb = np.c_[b, np.ones(len(b))] @ self._Kinv.T
        ba /= np.linalg.norm(ba, axis=1, keepdims=True)
        bb /= np.linalg.norm(bb, axis=1, keepdims=True)
        thr = self.ransac_px / self.K[0, 0]  # pixel threshold as an angle (chord ≈ angle when small)
        if self.method == "homography":  # OpenCV's RANSAC (no prior), then the nearest rotation
            H, m = cv2.findHomography(a, b, cv2.RANSAC, self.ransac_px)
            if H is None:
                return np.eye(3), np.zeros(len(a), bool)
            M = self._Kinv @ H @ self.K  # = λR for a pure rotation
            M /= np.cbrt(np.linalg.det(M))
            return _kabsch(np.eye(3), M.T), m.ravel() > 0  # nearest rotation to M (Procrustes: Σ m_i e_iᵀ = M)
        # RANSAC over 2-point samples (two bearings fix a rotation), all hypotheses scored at once
        n, iters = len(a), 100
        i = self._rng.integers(0, n, iters)
        j = (i + self._rng.integers(1, n, iters)) % n
        Rs = _kabsch(np.stack([ba[i], ba[j]], 1), np.stack([bb[i], bb[j]], 1))  # (iters, 3, 3)
        Rs = np.concatenate([R_prior[None], Rs])
        err = np.linalg.norm(bb[None] - ba @ np.swapaxes(Rs, 1, 2), axis=2)  # (1 + iters, N) chord distances
        score = (err < thr).sum(axis=1).astype(np.float64)
        score[0] *= self.prior_bias
        inl = err[np.argmax(score)] < thr
        R = np.eye(3)
        for _ in range(3):  # refit on the inliers, re-select
            if inl.sum() < 3:
                break
            R = _kabsch(ba[inl], bb[inl])
            inl = np.linalg.norm(bb - ba @ R.T, axis=1) < thr
        return R, inl

    # ---- end of clip -----------------------------------------------------------------------------------------
    def finish(self) -> CameraMotion:
        """The clip's ``CameraMotion``: unreliable frames slerped between reliable ones, static cameras snapped."""
        R, inliers = self._out_R.get(), self._out_inliers.get()
        reliable, flow = self._out_reliable.get(), self._out_flow.get()
        T = len(R)
        anchors = np.flatnonzero(reliable | (np.arange(T) == 0))  # frame 0 is the identity by definition
        gaps = np.flatnonzero(~reliable & (np.arange(T) > 0))
        if len(anchors) >= 2 and len(gaps):
            inside = gaps[gaps < anchors[-1]]
            if len(inside):
                R[inside] = Slerp(anchors, Rotation.from_matrix(R[anchors]))(inside).as_matrix()
            R[gaps[gaps > anchors[-1]]] = R[anchors[-1]]
        seen = reliable[1:]
        static = bool(seen.any()) and float(rotation_angle_deg(np.eye(3), R).max()) < self.static_deg \
            and float(np.median(flow[1:][seen])) < self.static_flow_px
        if static:
            R[:] = np.eye(3)
        return CameraMotion(R_cam_from_cam0=R, static=static, inliers=inliers, reliable=reliable,
                            median_flow_px=flow)
