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

Translation, where it can be seen (``translation=True``, the default)
--------------------------------------------------------------------
A camera that travels (a tracking shot, a dolly) moves near background points more than far ones (parallax), and a
rotation fitted to that flow takes part of the translation for a turn (a sideways tracking shot read as a pan).
Every keyframe pair (step 3; right after a re-key that is the frame-to-frame pair of step 2) whose rotation model
leaves a median residual of at least ``parallax_px`` / 2 is also fitted with the essential matrix E = [t]ₓR on
K-normalised points: ``cv2.findEssentialMat`` (5-point RANSAC, its threshold a third of that residual, at least
0.2 ``ransac_px``), of ``cv2.decomposeEssentialMat``'s poses the rotation nearer the rotation model's and the sign
of t that puts the points in front, then a least-squares polish of the Sampson distances (5 parameters). The
essential model is selected when all of these hold (everything in working pixels):

* GRIC (Torr 1998) prefers it over the n tracked points:
      rotation   GRIC_R = Σ min(e²/(2σ²), 4) + 2n ln 4 + 3 ln 4n   (e: transfer error of K R K⁻¹; 2-D manifold in
                                                                     the 4-D space of point pairs, 3 parameters)
      essential  GRIC_E = Σ min(s²/σ², 2)    + 3n ln 4 + 5 ln 4n   (s: Sampson distance; 3-D manifold, 5 params)
  with σ the noise of the better fit, at least ``sigma_px``: the MAD of the essential inliers' Sampson distances,
  or the rotation's "tightest layer" (the rotation of its best-fitting 30% of the points, least trimmed squares);
  GRIC_R takes the better of the rotation model and that layer;
* parallax: over the essential inliers, the median distance the best rotation (their least-squares one, or the
  rotation model's if smaller) leaves exceeds ``parallax_px``;
* E fits its inliers ``essential_tighter`` (4) times tighter than the tightest rotation layer fits its own
  (4 σ_E < σ_layer, σ_E the MAD above): what E leaves of real parallax is noise (σ_E / σ_layer ≤ 0.2 in the tests),
  while an unmasked foreground moving on its own, rolling-shutter wobble or lens distortion can win GRIC but E
  explains them only roughly (0.3–0.8);
* its rotation agrees with the frame-to-frame chain of step 2 (rotation model) within ``key_agree_deg`` plus
  twice (at most ``key_agree_deg`` more) the part of the previous step that the rotation model mistook for a turn.
  Otherwise the keyframe pair falls back to its rotation model, under the usual ``key_agree_deg`` test.

So noise, shake of a centimetre or two and pure rotations stay on the rotation model. Where the essential model is
selected, frame t's rotation is its R, chained through the keyframe as before, and the translation direction is
kept (``translating[t]``). Until enough parallax has built up after a re-key, a travelling camera's frames are on
the rotation model (its error stays about the parallax threshold). Wherever the essential model was fitted, the
keyframe's ``key_min_frac`` counts the corners that fit one rigid motion (rotation or essential inliers) rather than
the rotation alone, so the baseline can grow; while travelling, the keyframe's corners are tracked from their
positions in the previous frame. While the rotation explains the points to ``parallax_px`` / 2 the essential model
is not even fitted, and every answer is exactly the rotation-only one (``translation=False``).

Camera centre and translation direction (the scale is unknown; the body gives it): C_t is frame t's camera centre
in frame 0's camera coordinates, so that a point X₀ given in frame 0's camera coordinates is seen in frame t at

    X_t = R_cam_from_cam0[t] (X₀ − C_t),      C_0 = 0,
    t_dir_cam0[t] = (C_t − C_0) / |C_t − C_0|     (the zero vector while no translation has been seen)

From a keyframe k to frame t the essential pose X_t = R X_k + t̂ (|t̂| = 1) gives C_t − C_k = −s R_cam_from_cam0[t]ᵀ t̂
with an unknown length s; a frame on the rotation model has C_t = C_k (no parallax since the keyframe), an unreliable
one C_t interpolated like its rotation. s is carried from segment to segment by the background's depth: a keyframe
taken on a frame with translation gets, for its corners, the ranges the previous segment triangulated, and s is the
median ratio of those ranges to the ones the new segment triangulates (with fewer than 10 shared points, the median
background range is assumed unchanged). ``centre_cam0`` is C_t in units of the median background range at the
first keyframe pair with translation; it drifts like any monocular odometry, its direction much less.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Sequence

import cv2
import numpy as np
from scipy.optimize import least_squares
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
    """The camera's rotation over a clip, and the direction of its travel where seen (see the module docstring)."""

    R_cam_from_cam0: np.ndarray  # (T, 3, 3)
    static: bool  # True when the background was seen and did not move (then every R is the identity)
    inliers: np.ndarray  # (T,) int: background inliers behind frame t's rotation, the larger of t−1 → t and
    #                      keyframe → t (0 at t = 0)
    reliable: np.ndarray  # (T,) bool: False where too few background points (rotation interpolated / held there)
    median_flow_px: np.ndarray  # (T,) float: median background flow t−1 → t, full-resolution pixels (0 at t = 0)
    # (T, 3): unit direction of C_t − C_0 in frame 0's camera axes; zeros while no translation was seen, NaN where
    # not estimated (``translation=False``, or loaded from a file written before it existed: the default)
    t_dir_cam0: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3)))
    # (T,) bool: frame t's rotation and centre came from the essential (parallax) model (default: none)
    translating: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    # (T, 3): C_t up to one unknown scale (module docstring); NaN where not estimated (the default)
    centre_cam0: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3)))

    def __post_init__(self) -> None:
        T = len(self.R_cam_from_cam0)
        if T and not len(self.t_dir_cam0):
            self.t_dir_cam0 = np.full((T, 3), np.nan)
        if T and not len(self.translating):
            self.translating = np.zeros(T, bool)
        if T and not len(self.centre_cam0):
            self.centre_cam0 = np.full((T, 3), np.nan)

    def R_world2cam(self, R_world2cam0: np.ndarray) -> np.ndarray:
        """(T, 3, 3) world-to-camera rotations given frame 0's: R_cam_from_cam0[t] @ R_world2cam0."""
        return self.R_cam_from_cam0 @ np.asarray(R_world2cam0, dtype=np.float64)

    def as_dict(self, prefix: str = "camera_") -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickles)."""
        return {prefix + "R_cam_from_cam0": self.R_cam_from_cam0, prefix + "static": np.array(self.static),
                prefix + "inliers": self.inliers, prefix + "reliable": self.reliable,
                prefix + "median_flow_px": self.median_flow_px, prefix + "t_dir_cam0": self.t_dir_cam0,
                prefix + "translating": self.translating, prefix + "centre_cam0": self.centre_cam0}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], prefix: str = "camera_") -> "CameraMotion":
        """Inverse of ``as_dict`` (accepts an ``np.load`` result; the translation fields may be missing)."""
        optional = {name: np.asarray(d[prefix + name], dtype=dtype) for name, dtype in
                    (("t_dir_cam0", np.float64), ("translating", bool), ("centre_cam0", np.float64))
                    if prefix + name in d}
        return cls(R_cam_from_cam0=np.asarray(d[prefix + "R_cam_from_cam0"], dtype=np.float64),
                   static=bool(d[prefix + "static"]), inliers=np.asarray(d[prefix + "inliers"], dtype=np.int64),
                   reliable=np.asarray(d[prefix + "reliable"], dtype=bool),
                   median_flow_px=np.asarray(d[prefix + "median_flow_px"], dtype=np.float64), **optional)


def _kabsch(b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Rotation(s) R minimising Σ|b1 − R b0|²; b0, b1 (..., N, 3) → (..., 3, 3)."""
    M = np.swapaxes(b1, -1, -2) @ b0  # Σ b1 b0ᵀ
    U, _, Vt = np.linalg.svd(M)
    D = np.ones(M.shape[:-1])
    D[..., 2] = np.sign(np.linalg.det(U @ Vt))  # no reflections
    return (U * D[..., None, :]) @ Vt


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def _sampson(F: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Signed Sampson distances (N,) of homogeneous pixel pairs pa, pb (N, 3) to pbᵀ F pa = 0."""
    Fa, Fb = pa @ F.T, pb @ F
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Fb[:, 0] ** 2 + Fb[:, 1] ** 2
    return np.sum(pb * Fa, axis=1) / np.sqrt(np.maximum(den, 1e-300))


@dataclasses.dataclass
class _Fit:
    """One registration img0 → img1 (``CameraTracker._register``)."""

    n: int  # inliers of the selected model (0: failed)
    R: np.ndarray  # R_{1←0} of the selected model
    flow: float  # median flow of the rotation inliers, full-resolution px
    R_rot: np.ndarray  # the rotation model's R_{1←0}
    n_rot: int = 0  # the rotation model's inliers
    n_rigid: int = 0  # points that fit one rigid motion: the larger of the rotation and the essential inlier sets
    t: np.ndarray | None = None  # unit translation (x1 = R x0 + t, camera-1 axes) when the essential model won
    track: np.ndarray | None = None  # (N0, 2) every p0 in img1, NaN where lost
    idx: np.ndarray | None = None  # essential inliers (indices into p0) with a usable depth ...
    w: np.ndarray | None = None  # ... their inverse range in camera 0, per unit of baseline
    range1: np.ndarray | None = None  # ... and their range in camera 1, per unit of baseline

    def rotation_only(self) -> "_Fit":
        """This registration with the rotation model's answer."""
        return dataclasses.replace(self, n=self.n_rot, R=self.R_rot, t=None, idx=None, w=None, range1=None)


class _Series:
    """A growing per-frame array (amortised doubling), so hours of frames cost a few bytes each."""

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        self.a = np.zeros((64, *shape), dtype=dtype)
        self.n = 0

    def append(self, value) -> None:
        if self.n == len(self.a):   # np.zeros of a large array is untouched (unresident) memory until written
            grown = np.zeros((2 * len(self.a), *self.a.shape[1:]), self.a.dtype)
            grown[:self.n] = self.a
            self.a = grown
        self.a[self.n] = value
        self.n += 1

    def get(self) -> np.ndarray:
        return self.a[:self.n].copy()


class CameraTracker:
    """Streaming camera-motion estimator (rotation, and the translation's direction where parallax shows it);
    ``add`` every frame in order, then ``finish``."""

    def __init__(self, K: np.ndarray, image_size: tuple[int, int], max_side: int = 640, *,
                 method: Literal["bearing", "homography"] = "bearing", keyframes: bool = True,
                 max_corners: int = 400, min_points: int = 20, ransac_px: float = 1.5, fb_px: float = 0.5,
                 mask_grow: float = 0.25, mask_pad_px: float = 10.0, key_max_deg: float = 10.0,
                 key_min_frac: float = 0.4, key_agree_deg: float = 2.0, prior_bias: float = 1.5,
                 static_deg: float = 0.15, static_flow_px: float = 0.3, translation: bool = True,
                 parallax_px: float = 1.0, sigma_px: float = 0.1, essential_tighter: float = 4.0,
                 seed: int = 0) -> None:
        """K: (3, 3) full-resolution intrinsics; image_size: full-resolution (width, height); frames are tracked at
        ``max_side`` pixels on their long side (never upscaled). The other options are the thresholds of the module
        docstring (pixel thresholds ``ransac_px``, ``fb_px``, ``parallax_px``, ``sigma_px`` at the working
        resolution); ``translation=False`` is the rotation-only model everywhere (no essential fits)."""
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
        self.translation, self.parallax_px, self.sigma_px = translation, parallax_px, sigma_px
        self.essential_tighter = essential_tighter
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
        # translation: camera centres (frame 0's camera axes, scale of ``centre_cam0``) of the keyframe and the
        # previous frame, the keyframe corners' ranges in that scale (NaN: unknown), the median background range
        # last triangulated, and where the keyframe corners were in the previous frame while it was translating
        # (NaN: lost; None: predict them by the rotation)
        self._key_C = np.zeros(3)
        self._C = np.zeros(3)
        self._key_range = np.zeros(0)
        self._range_ref = 1.0
        self._key_last: np.ndarray | None = None
        self._step_bias = 0.0  # degrees between this frame's rotation and the rotation models' step onto the last
        self._out_R = _Series((3, 3), np.float64)
        self._out_inliers = _Series((), np.int64)
        self._out_reliable = _Series((), bool)
        self._out_flow = _Series((), np.float64)
        self._out_C = _Series((3,), np.float64)
        self._out_trans = _Series((), bool)

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
        C, translating, key_fit = self._C, False, None
        if t > 0:
            assert self._prev is not None and self._key is not None
            key_is_prev = self._key is self._prev
            # the essential model's rotation must agree with the frame-to-frame chain of rotation models up to
            # key_agree_deg plus twice the share of parallax the last step's rotation model took (a fast travel
            # biases every step; an independently moving foreground read as parallax jumps instead)
            agree = self.key_agree_deg + min(2.0 * self._step_bias, self.key_agree_deg)
            # frame to frame, started where the last step's rotation puts the points (right after a re-key this
            # is also the keyframe pair, so the essential model is tried on it)
            f2f = self._register(self._prev, self._prev_pts, gray, boxes, self._R_step,
                                 essential=self.translation and key_is_prev, agree_deg=agree)
            ok_f2f = f2f.n >= self.min_points
            if ok_f2f:
                R, self._R_step, inliers, flow = f2f.R @ self._R, f2f.R, f2f.n, f2f.flow
            else:
                self._R_step = np.eye(3)  # no motion prior across a gap; rotation held
            R_chain = f2f.R_rot @ self._R  # the rotation models' chain, for the bias
            # keyframe to this frame (skipped when the keyframe is the previous frame: same answer)
            key_used, n_key = False, 0
            if key_is_prev:
                key_used, n_key, key_fit = ok_f2f, f2f.n_rigid, f2f
            elif self.keyframes and len(self._key_pts) >= self.min_points:
                guess = None
                if self._key_last is not None:  # travelling: from where the corners were in the previous frame
                    lost = ~np.isfinite(self._key_last).all(axis=1)
                    guess = self._project(self._R_step, np.where(lost[:, None], 0, self._key_last))
                    guess[lost] = self._project(R @ self._key_R.T, self._key_pts[lost])
                key_fit = self._register(self._key, self._key_pts, gray, boxes, R @ self._key_R.T,
                                         essential=self.translation, guess=guess)
                # the essential answer if it agrees with the frame-to-frame one, else the rotation model's
                for fit in (key_fit, key_fit.rotation_only()) if key_fit.t is not None else (key_fit,):
                    R_key = fit.R @ self._key_R
                    tol = agree if fit.t is not None else self.key_agree_deg
                    if fit.n >= self.min_points and (not ok_f2f or rotation_angle_deg(R_key, R) < tol):
                        R, inliers, key_used, key_fit = R_key, max(inliers, fit.n), True, fit
                        if ok_f2f:  # the step prior, made consistent with the keyframe result
                            self._R_step = R @ self._R.T
                        break
                n_key = key_fit.n_rigid
            reliable = ok_f2f or key_used
            self._step_bias = float(rotation_angle_deg(R_chain, R)) if ok_f2f else 0.0
            if not key_used:
                key_fit = None
            if key_fit is not None and key_fit.t is not None:
                C, translating = self._centre(key_fit, R), True
            elif key_fit is not None:
                C = self._key_C  # no parallax since the keyframe
            self._key_last = key_fit.track if key_fit is not None and translating else None
            if key_used and n_key < self.key_min_frac * self._key_n0:
                key_used = False  # too few keyframe corners left: re-key below
        corners = self._corners(gray, boxes)
        if t == 0:
            reliable = len(corners) >= self.min_points
        # new keyframe: the first frame, and then a reliable frame the keyframe no longer serves
        if t == 0 or (reliable and (not key_used or rotation_angle_deg(R, self._key_R) > self.key_max_deg)):
            self._key, self._key_pts, self._key_R, self._key_n0 = gray, corners, R, len(corners)
            self._key_C, self._key_last = C, None
            self._key_range = self._carry_ranges(corners, key_fit if translating else None)
        self._prev, self._prev_pts, self._R, self._C = gray, corners, R, C
        self._out_R.append(R)
        self._out_inliers.append(inliers)
        self._out_reliable.append(reliable)
        self._out_flow.append(flow)
        self._out_C.append(C)
        self._out_trans.append(translating)

    def _centre(self, fit: _Fit, R: np.ndarray) -> np.ndarray:
        """Camera centre of this frame (frame 0's axes) from a keyframe fit with translation; R: R_cam_from_cam0."""
        assert fit.t is not None and fit.w is not None and fit.idx is not None
        prior = self._key_range[fit.idx]
        shared = np.isfinite(prior)
        if shared.sum() >= 10:  # the same background points' ranges, from the segment before: their ratio
            s = float(np.median(prior[shared] * fit.w[shared]))
        else:  # nothing shared: the background's median range taken as unchanged
            s = self._range_ref * float(np.median(fit.w))
        self._range_ref = s / float(np.median(fit.w))  # median range at the keyframe (the median of 1/w)
        # the keyframe corners' ranges not known yet, in this scale: the segment's later frames keep it
        self._key_range[fit.idx[~shared]] = s / fit.w[~shared]
        return self._key_C - s * (R.T @ fit.t)

    def _carry_ranges(self, corners: np.ndarray, fit: _Fit | None) -> np.ndarray:
        """Ranges (scale of ``centre_cam0``) of a new keyframe's corners, from the fit that brought the keyframe
        here (the points it triangulated within 1 px); NaN where unknown."""
        out = np.full(len(corners), np.nan)
        if fit is None or fit.idx is None or fit.track is None or not len(fit.idx) or not len(corners):
            return out
        assert fit.w is not None and fit.range1 is not None
        s = self._range_ref * float(np.median(fit.w))  # the length of this fit's baseline (set by _centre)
        p = fit.track[fit.idx]
        d2 = ((corners[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)  # (N, M): a few hundred each
        j = np.argmin(d2, axis=1)
        near = d2[np.arange(len(corners)), j] < 1.0
        out[near] = s * fit.range1[j[near]]
        return out

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
                  R_guess: np.ndarray, essential: bool = False, guess: np.ndarray | None = None,
                  agree_deg: float = np.inf) -> _Fit:
        """Track corners p0 of img0 into img1 (LK started at ``guess``, by default where ``R_guess`` puts them)
        and solve the rotation, and with ``essential`` also try the essential model (``_essential``; its rotation
        within ``agree_deg`` of the rotation model's)."""
        if len(p0) < self.min_points:
            return _Fit(0, np.eye(3), 0.0, np.eye(3))
        if guess is None:
            guess = self._project(R_guess, p0)
        p1, st = self._lk(img0, img1, p0, guess)
        pb, st_b = self._lk(img1, img0, p1, p0.copy())  # backward, for the forward-backward check
        keep = (st == 1) & (st_b == 1) & (np.linalg.norm(pb - p0, axis=1) < self.fb_px)
        keep &= self._outside(p1, boxes)
        a, b = p0[keep].astype(np.float64), p1[keep].astype(np.float64)
        if len(a) < self.min_points:
            return _Fit(0, np.eye(3), 0.0, np.eye(3))
        R, inl = self._solve(a, b, R_guess)
        n = int(inl.sum())
        flow = float(np.median(np.linalg.norm(b[inl] - a[inl], axis=1))) * self._flow_scale if n else 0.0
        fit = _Fit(n, R, flow, R, n_rot=n, n_rigid=n)
        if essential:
            self._essential(a, b, np.flatnonzero(keep), fit, agree_deg)
            if fit.t is not None:
                fit.track = np.full(p0.shape, np.nan)
                fit.track[keep] = b
        return fit

    def _essential(self, a: np.ndarray, b: np.ndarray, idx: np.ndarray, fit: _Fit, agree_deg: float = np.inf
                   ) -> None:
        """The essential model on the tracked pairs a → b (working pixels, (N, 2); idx: their indices in p0) and
        the model selection of the module docstring: when it wins, ``fit`` gets the essential R, t, inliers and
        depths. ``agree_deg``: the most its R may differ from the rotation model's."""
        n = len(a)
        R_rot = fit.R
        pa, pb = np.c_[a, np.ones(n)], np.c_[b, np.ones(n)]
        e_rot = self._transfer(R_rot, pa, b)  # the rotation model's residuals, pixels
        if np.median(e_rot) < 0.5 * self.parallax_px:  # no parallax to look for (pure rotations, shake): done
            return
        xa, xb = pa @ self._Kinv.T, pb @ self._Kinv.T  # normalised (z = 1)
        f = float(np.sqrt(self.K[0, 0] * self.K[1, 1]))
        # 5-point RANSAC with its threshold under the parallax (at ransac_px, any E near the right one takes every
        # point); of E's four poses, the rotation nearer the rotation model's (the other is ~180° off). Also the
        # rotation model's R with the t the epipolar constraint then fixes linearly, (R a × b) · t = 0, in case
        # RANSAC stopped in the wrong valley. The better start (MSAC score) is polished (Sampson distances).
        thr = float(np.clip(np.median(e_rot) / 3, 0.2 * self.ransac_px, self.ransac_px))
        E, m = cv2.findEssentialMat(xa[:, :2], xb[:, :2], np.eye(3), cv2.RANSAC, 0.999, thr / f)
        if E is None or E.shape[0] < 3 or m is None or m.sum() < self.min_points:
            return
        R1, R2, t1 = cv2.decomposeEssentialMat(E[:3])
        R_E = R1 if rotation_angle_deg(R1, R_rot) <= rotation_angle_deg(R2, R_rot) else R2
        t_lin = np.linalg.svd(np.cross(xa[m.ravel() > 0] @ R_rot.T, xb[m.ravel() > 0]))[2][-1]
        starts = [(R_E, t1.ravel()), (R_rot, t_lin)]
        errs = [_sampson(self._F(R0, t0), pa, pb) for R0, t0 in starts]
        best = int(np.argmin([np.minimum(e ** 2, thr ** 2).sum() for e in errs]))
        use = np.abs(errs[best]) < self.ransac_px
        if use.sum() < self.min_points:
            return
        R_E, t_E = self._polish(pa[use], pb[use], *starts[best])
        e_ess = _sampson(self._F(R_E, t_E), pa, pb)
        ba = xa / np.linalg.norm(xa, axis=1, keepdims=True)
        bb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        # inverse range per unit baseline in camera 0: b × (λ R a + t) = 0  →  1/λ = −(b × Ra)·(b × t) / |b × t|²
        bxr, bxt = np.cross(bb, ba @ R_E.T), np.cross(bb, t_E)
        nt = np.sum(bxt * bxt, axis=1)
        w = -np.sum(bxr * bxt, axis=1) / np.maximum(nt, 1e-12)
        if np.median(w[np.abs(e_ess) < self.ransac_px]) < 0:  # E fixes t up to its sign: points in front
            t_E, w = -t_E, -w
        inl = (np.abs(e_ess) < self.ransac_px) & (w * np.sqrt(nt) * f > -self.ransac_px)  # behind: by noise only
        n_ess = int(inl.sum())
        if n_ess < self.min_points:
            return
        fit.n_rigid = max(fit.n, n_ess)
        # parallax: what the best rotation (least squares, or the rotation model's) leaves of the inliers' flow
        parallax = min(float(np.median(self._transfer(_kabsch(ba[inl], bb[inl]), pa[inl], b[inl]))),
                       float(np.median(e_rot[inl])))
        # the rotation model's tightest layer: the rotation of the best-fitting 30% of the points (least trimmed
        # squares from R_rot). Where a large foreground moving on its own is left unmasked, R_rot may be a
        # compromise and this is the background's rotation; for a travelling camera it is a band of equal depth
        R_layer, k = R_rot, max(3, int(0.3 * n))
        for _ in range(4):
            near = np.argpartition(np.linalg.norm(bb - ba @ R_layer.T, axis=1), k)[:k]
            R_layer = _kabsch(ba[near], bb[near])
        e_layer = self._transfer(R_layer, pa, b)
        # σ: per-coordinate noise of the better fit: MAD of the Sampson distances, or from the layer's transfer
        # errors (their median is 2√(ln 2) σ)
        sigma_ess = 1.4826 * float(np.median(np.abs(e_ess[inl])))
        sigma_layer = float(np.median(np.partition(e_layer, k)[:k])) / (2 * np.sqrt(np.log(2)))
        sigma = max(self.sigma_px, min(sigma_ess, sigma_layer))
        # GRIC (Torr): rotation = 2-D manifold in the 4-D space of point pairs, 3 parameters, residual² = transfer²/2
        # (shared by both images); essential = 3-D manifold, 5 parameters, Sampson distance; r = 4, λ3 = 2
        gric_rot = min(np.minimum(0.5 * (e / sigma) ** 2, 4.0).sum() for e in (e_rot, e_layer)) \
            + 2 * n * np.log(4) + 3 * np.log(4 * n)
        gric_ess = np.minimum((e_ess / sigma) ** 2, 2.0).sum() + 3 * n * np.log(4) + 5 * np.log(4 * n)
        # essential: the better GRIC, parallax, and its inliers fitted well within the rotation layer's spread (an
        # unmasked foreground moving on its own, rolling shutter or lens distortion can win GRIC, fitted roughly)
        if not (gric_ess < gric_rot and parallax > self.parallax_px
                and sigma_ess * self.essential_tighter < max(self.sigma_px, sigma_layer)
                and rotation_angle_deg(R_E, R_rot) <= agree_deg):
            return
        good = inl & (w > 0) & (nt > 0.05 ** 2)  # depth where the point is in front and off the epipole
        if good.sum() < 10:
            return
        fit.n, fit.R, fit.t = n_ess, R_E, t_E
        fit.idx, fit.w = idx[good], w[good]
        fit.range1 = np.linalg.norm(ba[good] @ R_E.T + w[good, None] * t_E, axis=1) / w[good]

    def _transfer(self, R: np.ndarray, pa: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pixel distances (N,) of b (N, 2) from the homogeneous pixels pa (N, 3) moved by K R K⁻¹."""
        q = pa @ (self.K @ R @ self._Kinv).T
        return np.linalg.norm(q[:, :2] / q[:, 2:] - b, axis=1)

    def _F(self, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Fundamental matrix (working pixels) of the pose x1 = R x0 + t."""
        return self._Kinv.T @ _skew(t) @ R @ self._Kinv

    def _polish(self, pa: np.ndarray, pb: np.ndarray, R: np.ndarray, t: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """(R, unit t) minimising the Sampson distances of the inlier pairs (homogeneous pixels), from R, t."""
        t = t / np.linalg.norm(t)
        u = np.linalg.svd(t[None])[2][1:]  # two unit vectors ⟂ t

        def pose(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            tt = t + x[3:] @ u
            return Rotation.from_rotvec(x[:3]).as_matrix() @ R, tt / np.linalg.norm(tt)

        return pose(least_squares(lambda x: _sampson(self._F(*pose(x)), pa, pb), np.zeros(5), method="lm",
                                  x_scale=1e-3).x)

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
        C, translating = self._out_C.get(), self._out_trans.get()
        T = len(R)
        anchors = np.flatnonzero(reliable | (np.arange(T) == 0))  # frame 0 is the identity by definition
        gaps = np.flatnonzero(~reliable & (np.arange(T) > 0))
        if len(anchors) >= 2 and len(gaps):
            inside = gaps[gaps < anchors[-1]]
            if len(inside):
                R[inside] = Slerp(anchors, Rotation.from_matrix(R[anchors]))(inside).as_matrix()
                for k in range(3):
                    C[inside, k] = np.interp(inside, anchors, C[anchors, k])
            R[gaps[gaps > anchors[-1]]] = R[anchors[-1]]
            C[gaps[gaps > anchors[-1]]] = C[anchors[-1]]
        seen = reliable[1:]
        static = bool(seen.any()) and float(rotation_angle_deg(np.eye(3), R).max()) < self.static_deg \
            and float(np.median(flow[1:][seen])) < self.static_flow_px
        if static:
            R[:] = np.eye(3)
            C[:], translating[:] = 0.0, False
        norm = np.linalg.norm(C, axis=1, keepdims=True)
        t_dir = np.divide(C, norm, out=np.zeros_like(C), where=norm > 0)
        if not self.translation:
            t_dir[:], C[:] = np.nan, np.nan
        return CameraMotion(R_cam_from_cam0=R, static=static, inliers=inliers, reliable=reliable,
                            median_flow_px=flow, t_dir_cam0=t_dir, translating=translating, centre_cam0=C)
