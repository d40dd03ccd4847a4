"""Anatomical validity by construction, the opening model, strengths and head-motion scale."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceshot_core.anatomy import (
    LINKS,
    RULES,
    describe_violations,
    face_frame,
    openings,
    violations,
)
from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.retarget import retarget_points
from faceshot_core.retarget.constraints import sanitize_reference
from faceshot_core.retarget.expression import EYE_CLOSED_LEVEL, MOUTH_CAP
from faceshot_core.schema import EYES, MOUTH
from faceshot_core.synthetic_faces import (
    face_down,
    mean_face,
    rigid,
    scale_points,
    with_eyes_closed,
    with_mouth_open,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
FACE = mean_face(512)
checked = settings(
    max_examples=int(os.environ.get("FACESHOT_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def characters(draw: st.DrawFn) -> np.ndarray:
    """Plausible characters: parts resized, the mouth open or closed, lids narrow or round."""
    face = with_mouth_open(FACE, draw(st.floats(0.0, 0.6)))
    face = scale_points(face, EYES, draw(st.floats(0.5, 1.8)), draw(st.floats(0.3, 3.5)))
    face = scale_points(face, MOUTH, draw(st.floats(0.5, 2.0)), draw(st.floats(0.5, 2.0)))
    face = scale_points(face, range(27, 36), draw(st.floats(0.7, 1.4)))
    face = scale_points(face, range(68), draw(st.floats(0.3, 1.5)))
    return rigid(face, draw(st.floats(-0.6, 0.6)), (draw(st.floats(-60, 60)), 0.0))


@st.composite
def drivings(draw: st.DrawFn) -> np.ndarray:
    """Frame 0 neutral (mouth closed or parted), then anything a detector may return."""
    base = scale_points(mean_face(512), range(68), draw(st.floats(0.5, 1.4)))
    base = with_mouth_open(base, draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = [base]
    for _ in range(draw(st.integers(1, 6))):
        face = with_mouth_open(base, draw(st.floats(-0.3, 1.2)))  # < 0: lips pushed across
        if draw(st.booleans()):
            face = with_eyes_closed(face)
        face = face.copy()
        face[17:27] += face_down(base) * draw(st.floats(-15.0, 40.0))  # frown into the eyes
        face[48:68] -= face_down(base) * draw(st.floats(-10.0, 30.0))  # lips into the nose
        face = face + rng.normal(0.0, draw(st.floats(0.0, 4.0)), face.shape)
        frames.append(rigid(face, draw(st.floats(-0.6, 0.6)), (draw(st.floats(-40, 40)), 0.0)))
    return np.stack(frames)


@checked
@given(ref=characters(), dri=drivings(), strength=st.floats(0.0, 3.0), head=st.floats(0.0, 2.0))
def test_every_frame_is_valid_for_any_character_and_driving(
    ref: np.ndarray, dri: np.ndarray, strength: float, head: float
) -> None:
    out = retarget_points(ref, dri, strength={"mouth": strength, "eyes": strength},
                          head_motion=head)  # fmt: skip
    assert describe_violations(out) == []
    # Frame 0 is the reference, repaired where it breaks a rule itself (a mouth scaled past the
    # chin) and untouched where it does not.
    np.testing.assert_array_equal(out[0], sanitize_reference(ref).astype(np.float32))
    if not violations(ref).any():
        np.testing.assert_array_equal(out[0], ref.astype(np.float32))


def test_every_rule_is_checked() -> None:
    """Each rule family catches its own breach (so the property above can fail)."""
    edits = {
        "eyelids inverted": (37, 30.0),
        "lips crossed": (61, 40.0),
        "inner lip outside outer lip": (50, 20.0),
        "chin above mouth": (8, -60.0),
        "brow below eye": (19, 60.0),
        "mouth above nose": (33, 70.0),
    }
    assert violations(FACE).sum() == 0
    for rule, (point, shift) in edits.items():
        bad = FACE.copy()
        bad[point, 1] += shift
        assert RULES[int(np.flatnonzero(violations(bad))[0])] == rule
    bad = FACE.copy()
    bad[[36, 39]] = bad[[39, 36]]
    assert violations(bad)[RULES.index("parts out of order")]
    assert {link.rule for link in LINKS} == set(RULES)


def test_rules_read_in_the_face_frame() -> None:
    """A head upside down is judged like an upright one."""
    assert violations(rigid(FACE, np.pi, (0.0, 0.0))).sum() == 0
    x, y = face_frame(rigid(FACE, 1.0, (20.0, -5.0)))
    x0, y0 = face_frame(FACE)
    np.testing.assert_allclose(x, x0, atol=1e-9)
    np.testing.assert_allclose(y, y0, atol=1e-9)


@pytest.mark.parametrize("eye_height", [0.3, 1.0, 3.5])
def test_full_blink_closes_any_eye(eye_height: float) -> None:
    ref = scale_points(FACE * 0.7 + 60, EYES, 1.2, eye_height)
    dri = np.stack([FACE, with_eyes_closed(FACE), FACE])
    out = openings(retarget_points(ref, dri))
    rest = openings(ref)
    assert out.right_eye[1] == pytest.approx(0.0, abs=1e-3 * rest.right_eye)
    assert out.left_eye[1] == pytest.approx(0.0, abs=1e-3 * rest.left_eye)
    assert out.right_eye[2] == pytest.approx(rest.right_eye, rel=1e-3)  # and opens again


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_partial_blink_closes_a_narrow_eye_by_the_same_fraction(fraction: float) -> None:
    """The same fraction of the driving eye's opening above the detector's closed level."""
    ref = scale_points(FACE, EYES, 1.0, 0.4)
    partly = FACE + fraction * (with_eyes_closed(FACE) - FACE)
    out = openings(retarget_points(ref, np.stack([FACE, partly])))
    g0 = openings(FACE).right_eye_ratio[()] * 1.0  # lid gap / eye width, at rest
    pair = 2 * np.sqrt(1 - 1 / 9) * 0.016 / 0.11  # each lid pair's gap / width (mean face)
    want = max(pair * (1 - fraction) - EYE_CLOSED_LEVEL, 0) / (pair - EYE_CLOSED_LEVEL)
    assert g0 == pytest.approx(pair, rel=1e-6)
    assert out.right_eye[1] / openings(ref).right_eye == pytest.approx(want, abs=0.01)


def test_open_reference_mouth_closes_after_the_driving_mouth_opens_and_closes() -> None:
    ref = with_mouth_open(FACE, 0.4)
    dri = np.stack([FACE, with_mouth_open(FACE, 0.5), FACE, with_mouth_open(FACE, 0.25)])
    gap = openings(retarget_points(ref, dri)).mouth
    rest = openings(ref).mouth
    assert gap[1] > rest  # opens further
    assert gap[2] == pytest.approx(0.0, abs=1e-6 * rest)  # closes with the driving mouth
    assert 0 < gap[3] < gap[1]


def test_strength_scales_a_part_and_zero_freezes_it() -> None:
    dri = np.stack([FACE, with_mouth_open(with_eyes_closed(FACE), 0.4)])
    plain = openings(retarget_points(FACE, dri))
    double = openings(retarget_points(FACE, dri, strength={"mouth": 2.0}))
    assert double.mouth[1] == pytest.approx(2 * plain.mouth[1], rel=0.02)
    frozen = retarget_points(FACE, dri, strength={"eyes": 0.0, "mouth": 0})
    np.testing.assert_allclose(frozen[1][list(EYES) + list(MOUTH)], FACE[list(EYES) + list(MOUTH)],
                               atol=1e-3)  # fmt: skip
    brows = retarget_points(FACE, dri, strength={"brows": 0.5})  # an alias
    assert brows.shape == dri.shape


def test_head_motion_scales_the_turn_and_shift() -> None:
    dri = np.stack([FACE, rigid(FACE, 0.4, (30.0, -20.0))])
    ref = FACE * 0.8 + 40
    still = retarget_points(ref, dri, head_motion=0.0)
    np.testing.assert_allclose(still[1], ref, atol=1e-3)
    half = retarget_points(ref, dri, head_motion=0.5).astype(np.float64)
    axis = half[1, 16] - half[1, 0]
    assert np.arctan2(axis[1], axis[0]) == pytest.approx(0.2, abs=1e-4)
    np.testing.assert_array_equal(retarget_points(ref, dri, global_motion=False), still)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strength": {"nose_tip": 1.0}}, "unknown part 'nose_tip'"),
        ({"strength": {"mouth": 12.0}}, "between 0 and 5"),
        ({"strength": {"mouth": -1.0}}, "between 0 and 5"),
        ({"head_motion": float("nan")}, "head_motion"),
    ],
)
def test_bad_controls_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidLandmarksError, match=message):
        retarget_points(FACE, FACE[None], **kwargs)


def test_swapped_annotation_is_repaired_and_valid_reference_kept() -> None:
    np.testing.assert_array_equal(sanitize_reference(FACE), FACE)
    opened = with_mouth_open(FACE, 0.3)
    swapped = opened.copy()
    swapped[[61, 62, 63, 67, 66, 65]] = opened[[67, 66, 65, 61, 62, 63]]
    assert violations(swapped).any()
    np.testing.assert_allclose(sanitize_reference(swapped), opened)
    out = retarget_points(swapped, np.stack([FACE, with_mouth_open(FACE, 0.2)]))
    np.testing.assert_allclose(out[0], opened, atol=1e-4)
    assert describe_violations(out) == []


def test_an_open_mouth_has_less_room_to_open() -> None:
    """A laughing reference plus a yawn stays within MOUTH_CAP of the mouth width; a closed one
    opens by the driving face's full amount."""
    yawn = np.stack([FACE, with_mouth_open(FACE, 1.2)])
    closed = openings(retarget_points(FACE, yawn))
    assert closed.mouth_ratio[1] == pytest.approx(openings(yawn).mouth_ratio[1], rel=1e-6)
    laughing = with_mouth_open(FACE, 0.6)
    out = openings(retarget_points(laughing, yawn))
    assert openings(laughing).mouth_ratio < out.mouth_ratio[1] <= MOUTH_CAP + 1e-6
