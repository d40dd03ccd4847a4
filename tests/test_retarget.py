"""Coordinate-based retargeting: oracle agreement, motion properties and stability by construction.

The oracle is :func:`faceshot_core.retarget_loop.retarget_loop`, the plain per-point loop.

Tolerances.  Both implementations compute in float64 and round to float32, so on faces of
~512 px they agree to a couple of float32 ulps (``ULP_TOL``: 2.5e-4 px, two ulps at 1024).
Checks that compare the float32 output with a float64 expectation allow ``PX_TOL`` = 1e-3 px.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from faceshot_core.anatomy import face_frame, violations
from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.retarget import (
    MAX_TRANSLATION_SCALE,
    MIN_SIZE,
    OFFSET_BOUND,
    resolve_parts,
    retarget,
    retarget_points,
)
from faceshot_core.retarget.constraints import Margins, project, sanitize_reference
from faceshot_core.retarget_loop import retarget_loop
from faceshot_core.schema import EYES, MOUTH, PARTS
from faceshot_core.synthetic_faces import (
    eye_aspect_ratio,
    face_down,
    inner_lip_gap,
    mean_face,
    rigid,
    scale_points,
    with_eyes_closed,
    with_mouth_open,
)

# Overflow, underflow-to-NaN or division warnings would mean the design is not stable after all.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

ULP_TOL = 2.5e-4
PX_TOL = 1e-3
FACE = mean_face(512)
ALL_PARTS = list(PARTS)
NOT_LIDS = [i for i in range(68) if i not in (37, 38, 40, 41, 43, 44, 46, 47)]

fast = settings(
    max_examples=int(os.environ.get("FACESHOT_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def face_origin(points: np.ndarray) -> np.ndarray:
    """Midpoint of the jaw endpoints 0 and 16 (the global frame origin), for any leading shape."""
    pts = np.asarray(points, dtype=np.float64)
    return 0.5 * (pts[..., 0, :] + pts[..., 16, :])


def head_scale(ref: np.ndarray, dri0: np.ndarray) -> float:
    """Scale of the head translation under ``head_translation="face"``: face radius ratio."""
    radius_r = np.linalg.norm(ref - face_origin(ref), axis=-1).max()
    radius_d = np.linalg.norm(dri0 - face_origin(dri0), axis=-1).max()
    ratio = max(radius_r, MIN_SIZE) / max(radius_d, MIN_SIZE)
    return float(np.clip(ratio, 1 / MAX_TRANSLATION_SCALE, MAX_TRANSLATION_SCALE))


def kept_by_projection(dri: np.ndarray) -> np.ndarray:
    """Frames the anatomy projection leaves alone: valid, and with neighbouring parts no closer
    than the margins it keeps (a fraction of their distance in frame 0)."""
    x, y = face_frame(dri)
    margins = Margins.of(x[0], y[0])
    px, py = x.copy(), y.copy()
    project(px, py, margins)
    return ~violations(dri, tolerance=0.0).any(-1) & (px == x).all(-1) & (py == y).all(-1)


def raise_brows(face: np.ndarray, amount: float) -> np.ndarray:
    out = np.array(face, dtype=np.float64, copy=True)
    out[17:27] -= face_down(face) * amount
    return out


# --- strategies -------------------------------------------------------------------------------


@st.composite
def characters(draw: st.DrawFn) -> np.ndarray:
    """A plausible character: the mean face with its parts resized, the whole turned and moved."""
    face = mean_face(512)
    face = scale_points(face, EYES, draw(st.floats(0.6, 1.6)), draw(st.floats(0.5, 3.0)))
    face = scale_points(face, MOUTH, draw(st.floats(0.6, 1.6)), draw(st.floats(0.6, 1.6)))
    face = scale_points(face, range(27, 36), draw(st.floats(0.7, 1.4)))
    face = scale_points(face, range(68), draw(st.floats(0.5, 1.2)))
    return rigid(face, draw(st.floats(-0.4, 0.4)), (draw(st.floats(-40, 40)), 0.0))


@st.composite
def driving_clips(draw: st.DrawFn, max_frames: int = 5) -> np.ndarray:
    """A neutral frame 0, then frames with expressions, head motion and detector noise."""
    base = scale_points(mean_face(512), range(68), draw(st.floats(0.6, 1.3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = [base]
    for _ in range(draw(st.integers(0, max_frames - 1))):
        face = base
        if draw(st.booleans()):
            face = with_eyes_closed(face)
        face = with_mouth_open(face, draw(st.floats(0.0, 0.8)))
        face = raise_brows(face, draw(st.floats(-5.0, 10.0)))
        face = face + rng.normal(0.0, draw(st.floats(0.0, 2.0)), face.shape)
        angle = draw(st.floats(-0.5, 0.5))
        shift = (draw(st.floats(-50, 50)), draw(st.floats(-50, 50)))
        frames.append(rigid(face, angle, shift))
    return np.stack(frames)


part_subsets = st.one_of(st.none(), st.lists(st.sampled_from(ALL_PARTS), unique=True))


# --- agreement with the loop oracle -----------------------------------------------------------


@fast
@given(ref=characters(), dri=driving_clips(), parts=part_subsets, global_motion=st.booleans())
def test_vectorised_matches_loop_oracle(
    ref: np.ndarray, dri: np.ndarray, parts: list[str] | None, global_motion: bool
) -> None:
    got = retarget_points(ref, dri, parts=parts, global_motion=global_motion, anatomy=False)
    want = retarget_loop(ref, dri, parts, global_motion)
    assert got.dtype == np.float32 and got.shape == dri.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ULP_TOL)


def test_oracle_agrees_on_collapsed_runs() -> None:
    """Degenerate runs (all points of a run on one spot) take the same guarded path in both."""
    ref = FACE.copy()
    ref[36:42] = ref[39]  # one eye collapsed: coincident endpoints, zero radius
    ref[60:68] = ref[62]
    dri = np.stack([FACE, with_mouth_open(with_eyes_closed(FACE), 0.4), rigid(FACE, 0.3)])
    dri[:, 31:36] = dri[:, 33:34]  # nostrils collapsed in the driving clip
    got = retarget_points(ref, dri, anatomy=False)
    np.testing.assert_allclose(got, retarget_loop(ref, dri), rtol=0, atol=ULP_TOL)


# --- motion properties ------------------------------------------------------------------------


@fast
@given(dri=driving_clips())
def test_reference_equal_to_driving_frame0_reproduces_driving(dri: np.ndarray) -> None:
    """Exactly without the anatomy step; with it, on every frame the driving face draws validly
    (noise can cross its closed lips, which the character does not copy; see
    :func:`kept_by_projection`), lids aside (a closing driving eye is read with the detector's
    closed level, see test_retarget_anatomy)."""
    valid = kept_by_projection(dri)
    got = retarget_points(dri[0], dri)
    np.testing.assert_allclose(got[valid][:, NOT_LIDS], dri[valid][:, NOT_LIDS], rtol=0,
                               atol=PX_TOL)  # fmt: skip
    bare = retarget_points(dri[0], dri, anatomy=False)
    np.testing.assert_allclose(bare, dri, rtol=0, atol=PX_TOL)


@fast
@given(
    dri=driving_clips(),
    scale=st.floats(0.3, 2.0),
    offset=st.tuples(st.floats(-99, 99), st.floats(-99, 99)),
)
def test_scaled_copy_gets_exactly_scaled_expression(
    dri: np.ndarray, scale: float, offset: tuple[float, float]
) -> None:
    """A reference that is a scaled copy of driving frame 0 gets the paper's ratio exactly.

    Local motion scales with the face, and so does the head translation by default; with
    ``head_translation="pixels"`` it is copied unscaled (the paper's Eq. 5).  Frame ``m`` is
    ``O_ref + k dO_m + scale * (driving_m - O_dri_m)`` with ``k = scale`` or 1.
    """
    ref = (dri[0] - 256.0) * scale + 256.0 + np.array(offset)
    head_shift = face_origin(dri) - face_origin(dri[0])
    valid = kept_by_projection(dri)  # as above: crossed driving lips are not copied
    for mode, k in (("face", scale), ("pixels", 1.0)):
        anchor = face_origin(ref) + k * head_shift
        want = anchor[:, None, :] + scale * (dri - face_origin(dri)[:, None, :])
        out = retarget_points(ref, dri, head_translation=mode)
        np.testing.assert_allclose(out[valid][:, NOT_LIDS], want[valid][:, NOT_LIDS], rtol=0,
                                   atol=PX_TOL)  # fmt: skip
        bare = retarget_points(ref, dri, head_translation=mode, anatomy=False)
        np.testing.assert_allclose(bare, want, rtol=0, atol=PX_TOL)


@fast
@given(
    ref=characters(),
    angles=st.lists(st.floats(-3.1, 3.1), min_size=1, max_size=4),
    data=st.data(),
)
def test_rigid_driving_moves_reference_rigidly(
    ref: np.ndarray, angles: list[float], data: st.DataObject
) -> None:
    """Driving frames that only turn (about any centre) and shift move the reference rigidly."""
    base = mean_face(512)
    coord = st.floats(-300, 800)
    frames = [base] + [
        rigid(base, a, (data.draw(coord), data.draw(coord)), (data.draw(coord), data.draw(coord)))
        for a in angles
    ]
    dri = np.stack(frames)
    out = retarget_points(ref, dri).astype(np.float64)
    ref_d = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    for m, angle in enumerate([0.0, *angles]):
        # Pairwise distances preserved.
        out_d = np.linalg.norm(out[m][:, None] - out[m][None], axis=-1)
        np.testing.assert_allclose(out_d, ref_d, rtol=0, atol=4 * PX_TOL)
        # Same rotation angle (Procrustes on centred points, as complex numbers).
        a = (ref - ref.mean(0)) @ [1, 1j]
        b = (out[m] - out[m].mean(0)) @ [1, 1j]
        turn = np.angle(np.vdot(a, b))
        assert abs(np.angle(np.exp(1j * (turn - angle)))) < 1e-5
        # Translation consistent with it: the reference face origin follows the driving one.
        shift = (face_origin(dri[m]) - face_origin(dri[0])) * head_scale(ref, dri[0])
        np.testing.assert_allclose(face_origin(out[m]), face_origin(ref) + shift, atol=PX_TOL)


def test_rigid_driving_without_global_motion_keeps_reference_still() -> None:
    dri = np.stack([FACE, rigid(FACE, 0.4, (30, -20), (100, 50)), rigid(FACE, -1.0, (5, 5))])
    out = retarget_points(FACE * 0.7 + 40, dri, global_motion=False)
    np.testing.assert_allclose(out, np.broadcast_to(FACE * 0.7 + 40, out.shape), atol=PX_TOL)


@pytest.mark.parametrize(
    ("eye_width", "eye_height"),
    [(1.3, 1.3), (1.0, 2.5)],  # same eye shape as the driver / round cartoon eyes
)
def test_closing_driving_eyes_closes_character_eyes(eye_width: float, eye_height: float) -> None:
    # Eyes resized in the character's own frame, then the character tilted.
    ref = rigid(scale_points(FACE * 0.6, EYES, eye_width, eye_height), 0.2, (50, 60))
    dri = np.stack([FACE, with_eyes_closed(FACE), FACE])
    out = retarget_points(ref, dri).astype(np.float64)
    assert eye_aspect_ratio(ref) > 0.2
    if eye_width == eye_height:  # similar eyes: the paper's ratio, exactly closed
        assert eye_aspect_ratio(out[1]) < 1e-4
    else:  # 2.5x rounder eyes than the driver's: still at least 90 % closed
        assert eye_aspect_ratio(out[1]) < 0.1 * eye_aspect_ratio(ref)
    np.testing.assert_allclose(out[2], ref, atol=PX_TOL)  # and open again


@pytest.mark.parametrize("amount", [0.1, 0.3, 0.6])
@pytest.mark.parametrize("mouth_scale", [0.7, 1.0, 1.8])
def test_opening_driving_mouth_opens_character_mouth_in_proportion(
    amount: float, mouth_scale: float
) -> None:
    """The neutral mouths are closed (inner lips on the corner line: local y = 0, where the paper's
    ratio is 0/0); the character's gap must still grow in proportion to its own mouth width."""
    ref = scale_points(FACE * 0.8 + 30, MOUTH, mouth_scale)
    dri = np.stack([FACE, with_mouth_open(FACE, amount)])
    out = retarget_points(ref, dri).astype(np.float64)
    width_ref = np.linalg.norm(ref[64] - ref[60])
    width_dri = np.linalg.norm(FACE[64] - FACE[60])
    assert inner_lip_gap(ref) == 0.0
    want = inner_lip_gap(dri[1]) / width_dri * width_ref
    assert inner_lip_gap(out[1]) == pytest.approx(want, rel=0.02)


def test_lip_rising_off_its_axis_moves_in_proportion_to_mouth_size() -> None:
    """A character whose upper lip arches 4x higher than the driver's (relative to the mouth
    corners) must not raise it 4x as far: motion away from a run's axis follows the run size."""
    dri0 = FACE.copy()
    ref = FACE.copy()
    up = -face_down(FACE)
    corners = 0.5 * (FACE[48] + FACE[54])
    dri0[51] = corners + up * 2.5  # a flat driving upper lip
    ref[51] = corners + up * 10.0  # an arched character upper lip, same mouth width
    raised = dri0.copy()
    raised[51] += up * 20.0
    out = retarget_points(ref, np.stack([dri0, raised])).astype(np.float64)
    rise = float(np.dot(out[1, 51] - ref[51], up))
    assert rise == pytest.approx(20.0, rel=0.05)  # the paper's ratio would give 80 px


def test_near_zero_local_coordinates_are_continuous() -> None:
    """Moving the closed driving lips off their axis by 1e-6 px barely changes anything (the
    paper's per-axis ratio jumps from 0/0 to ~1e6 there)."""
    dri = np.stack([FACE, with_mouth_open(FACE, 0.5)])
    nudged = dri.copy()
    nudged[:, [61, 62, 63]] -= face_down(FACE) * 1e-6
    ref = scale_points(FACE, MOUTH, 1.4, 0.5)
    ref[[61, 62, 63]] -= face_down(FACE) * 3.0  # the character's mouth is slightly open
    a = retarget_points(ref, dri)
    b = retarget_points(ref, nudged)
    np.testing.assert_allclose(a, b, atol=PX_TOL)


# --- frame 0, parts selection, wrapper --------------------------------------------------------


@fast
@given(ref=characters(), dri=driving_clips(), parts=part_subsets)
def test_frame0_is_reference(ref: np.ndarray, dri: np.ndarray, parts: list[str] | None) -> None:
    out = retarget_points(ref, dri, parts=parts)
    np.testing.assert_array_equal(out[0], ref.astype(np.float32))
    # The loop oracle does not overwrite frame 0: the arithmetic itself gives the reference back.
    np.testing.assert_allclose(retarget_loop(ref, dri[:1], parts)[0], ref, rtol=0, atol=PX_TOL)


@pytest.mark.parametrize("part", ALL_PARTS)
def test_only_selected_part_moves_locally(part: str) -> None:
    expressive = raise_brows(with_mouth_open(with_eyes_closed(FACE), 0.5), 8.0)
    expressive[27:36] += 3.0 * face_down(FACE)  # the nose moves too
    dri = np.stack([FACE, rigid(expressive, 0.2, (10, 5))])
    ref = scale_points(FACE, range(68), 0.8)
    head_only = retarget_points(ref, dri, parts=[])
    out = retarget_points(ref, dri, parts=[part])
    moved = np.flatnonzero(np.linalg.norm(out[1] - head_only[1], axis=-1) > 0.05)
    # An opening mouth takes the chin (jaw points 4-12) down with it.
    allowed = set(PARTS[part]) | (set(range(4, 13)) if part == "mouth" else set())
    assert set(moved) <= allowed
    assert len(moved) >= 3
    # Same answer with the part named by a bare string.
    np.testing.assert_array_equal(retarget_points(ref, dri, parts=part), out)


def test_all_parts_is_the_default() -> None:
    dri = np.stack([FACE, with_mouth_open(with_eyes_closed(FACE), 0.3)])
    np.testing.assert_array_equal(
        retarget_points(FACE * 0.9, dri), retarget_points(FACE * 0.9, dri, parts=ALL_PARTS)
    )


def test_unknown_part_is_a_clear_error() -> None:
    with pytest.raises(InvalidLandmarksError, match=r"'eye'.*valid parts are: face_boundary"):
        retarget_points(FACE, FACE[None], parts=["eye", "mouth"])
    assert resolve_parts(["mouth", "eyes"]) == ("eyes", "mouth")
    assert issubclass(InvalidLandmarksError, ValueError)


@pytest.mark.parametrize(
    ("ref", "dri"),
    [
        (np.zeros((67, 2)), np.zeros((2, 68, 2))),
        (np.zeros((68, 2)), np.zeros((68, 2))),
        (np.zeros((68, 2)), np.zeros((0, 68, 2))),
        (np.full((68, 2), np.nan), np.zeros((2, 68, 2))),
        (np.zeros((68, 2)), np.full((2, 68, 2), np.inf)),
        (np.zeros((68, 2)), [["a"]]),
    ],
)
def test_bad_arrays_raise(ref: object, dri: object) -> None:
    with pytest.raises(InvalidLandmarksError):
        retarget_points(ref, dri)  # type: ignore[arg-type]


def test_retarget_wraps_landmark_types() -> None:
    ref = FaceLandmarks(FACE * 0.5, (256, 300))
    frames = np.stack([FACE, with_mouth_open(FACE, 0.3), FACE])
    flags = np.array([False, True, False])
    dri = LandmarkSequence(frames, (512, 512), fps=25.0, interpolated=flags)
    seq = retarget(ref, dri, parts=["mouth"])
    assert seq.image_size == (256, 300)
    assert seq.fps == 25.0
    np.testing.assert_array_equal(seq.flags, flags)
    np.testing.assert_array_equal(seq.points, retarget_points(ref, dri.points, parts="mouth"))
    # Bare arrays: the size comes from image_size=, else from the driving sequence, else error.
    assert retarget(FACE, dri, image_size=(600, 500)).image_size == (600, 500)
    assert retarget(FACE, dri).image_size == (512, 512)
    plain = retarget(FACE, frames, image_size=(512, 512))
    assert plain.fps is None and not plain.flags.any()
    with pytest.raises(InvalidLandmarksError, match="image_size"):
        retarget(FACE, frames)


# --- stability by construction ----------------------------------------------------------------

coords = st.floats(allow_nan=False, allow_infinity=False)  # the whole float64 range
moderate = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def wild_faces(draw: st.DrawFn) -> np.ndarray:
    """Arbitrary finite ``[68, 2]`` point sets, biased towards the degenerate cases."""
    kind = draw(st.sampled_from(["random", "constant", "collinear", "collapsed", "near", "scaled"]))
    if kind == "random":
        elements = draw(st.sampled_from([moderate, coords, st.floats(-1e-300, 1e-300)]))
        return draw(hnp.arrays(np.float64, (68, 2), elements=elements))
    if kind == "constant":  # all points equal (zeros included)
        return np.full((68, 2), draw(st.sampled_from([0.0, 1e-310, -3.0, 1e30, -1e300])))
    if kind == "collinear":
        start = np.array([draw(moderate), draw(moderate)])
        direction = np.array([draw(moderate), draw(moderate)])
        t = draw(hnp.arrays(np.float64, 68, elements=st.floats(-10, 10)))
        return start + t[:, None] * direction
    face = mean_face(512)
    if kind == "collapsed":  # whole runs / parts shrunk onto one point
        for part in draw(st.lists(st.sampled_from(ALL_PARTS), min_size=1, unique=True)):
            idx = list(PARTS[part])
            face[idx] = face[idx[draw(st.integers(0, len(idx) - 1))]]
        return face
    if kind == "near":  # every run flattened onto its axis, then nudged by ~1e-9
        face[:, 1] = np.round(face[:, 1] / 200.0) * 200.0
        noise = draw(hnp.arrays(np.float64, (68, 2), elements=st.floats(-1e-9, 1e-9)))
        return face + noise
    return face * draw(st.sampled_from([1e-30, 1e-6, 1e6, 1e30, 1e300]))


@st.composite
def wild_clips(draw: st.DrawFn) -> np.ndarray:
    frames = [draw(wild_faces())]
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            frames.append(draw(wild_faces()))
        else:  # a perturbation of frame 0, so that local motion happens on the degenerate face
            noise = draw(hnp.arrays(np.float64, (68, 2), elements=st.floats(-1e3, 1e3)))
            with np.errstate(over="ignore"):
                frame = frames[0] + noise
            frames.append(np.where(np.isfinite(frame), frame, frames[0]))
    return np.stack(frames)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(ref=wild_faces(), dri=wild_clips(), parts=part_subsets, global_motion=st.booleans())
def test_any_finite_input_gives_finite_bounded_output(
    ref: np.ndarray, dri: np.ndarray, parts: list[str] | None, global_motion: bool
) -> None:
    out = retarget_points(ref, dri, parts=parts, global_motion=global_motion)
    assert out.shape == dri.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    if max(np.abs(ref).max(), np.abs(dri).max()) > 1e30:
        return  # the float32 output may saturate; finiteness is all that is promised there
    # Every point within OFFSET_BOUND face radii of the moved reference face origin; the
    # reference is the one animated, after the repair of any rule it breaks.
    ref = sanitize_reference(ref)
    origin = face_origin(ref)
    size = max(float(np.linalg.norm(ref - origin, axis=-1).max()), MIN_SIZE)
    head_shift = (face_origin(dri) - face_origin(dri[0])) * head_scale(ref, dri[0])
    anchor = origin + (head_shift if global_motion else 0.0)
    anchor = np.broadcast_to(anchor, (len(dri), 2))
    dist = np.linalg.norm(out.astype(np.float64) - anchor[:, None, :], axis=-1)
    rounding = 1e-6 * (np.abs(anchor).max() + OFFSET_BOUND * size)  # float32 output, float64 sums
    assert dist.max() <= OFFSET_BOUND * size + rounding


def test_bound_is_reached_only_by_absurd_motion() -> None:
    """Shows the clips at work: an absurd driving motion saturates at the documented bound."""
    dri = np.stack([FACE, FACE])
    dri[1, 60:68] += np.array([0.0, 1e7])  # inner lips thrown 10 million px away
    dri[1, 36:42] = dri[1, 39]  # one eye collapsed
    out = retarget_points(FACE, dri).astype(np.float64)
    size = np.linalg.norm(FACE - face_origin(FACE), axis=-1).max()
    dist = np.linalg.norm(out[1] - face_origin(FACE), axis=-1)
    assert np.isfinite(out).all()
    assert dist.max() <= OFFSET_BOUND * size
    assert dist.max() > 1.2 * size  # the lips did move, by a clipped amount
