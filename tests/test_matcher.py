"""Eq. 4 arithmetic of the appearance-guided matcher, proved with features whose answer is known.

:class:`PatchExtractor` is a real dense descriptor: at every cell of the map, the 7x7 grid of
colour values around it in a blurred copy of the image, minus their mean (so cosine similarity
is normalised cross-correlation).  Matching a landmark of an image on a shifted copy of the same
image must then land on the landmark plus the shift.  It lives in
:mod:`faceshot_core.matching.patch_extractor`, shared with ``test_gallery.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureExtractor
from faceshot_core.matching.matcher import (
    Matcher,
    average_vectors,
    match_points,
    normalize_rows,
    point_features,
    similarity_map,
)
from faceshot_core.matching.patch_extractor import FULL_RES, LOW_RES, PatchExtractor, shifted


@pytest.fixture(scope="module")
def astronaut_points(astronaut: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks on the astronaut, rounded to pixel centres."""
    from faceshot.pipeline import detect_reference

    return np.round(detect_reference(astronaut).points).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Pixel conventions


def _torch_upsampled(fmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    width, height = size
    up = f.interpolate(
        torch.from_numpy(fmap)[None], size=(height, width), mode="bilinear", align_corners=False
    )
    return f.normalize(up, dim=1)[0].numpy()


@pytest.mark.parametrize(
    ("map_hw", "size"), [((5, 7), (23, 17)), ((9, 9), (9, 9)), ((8, 6), (5, 7))]
)
def test_point_features_equal_torch_upsample_then_normalise(
    map_hw: tuple[int, int], size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(1)
    fmap = rng.normal(size=(6, *map_hw)).astype(np.float32)
    expected = _torch_upsampled(fmap, size)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    got = point_features(fmap, np.stack([xs.ravel(), ys.ravel()], axis=1), size)
    np.testing.assert_allclose(got, expected.reshape(6, -1).T, atol=2e-6)


def test_point_features_between_pixels_interpolate_the_low_res_map() -> None:
    rng = np.random.default_rng(2)
    fmap = rng.normal(size=(5, 6, 8)).astype(np.float32)
    size = (32, 24)  # 4x upsampling
    points = rng.uniform(-3, [35, 27], size=(50, 2))  # a few just outside the image too
    u = np.clip((points[:, 0] + 0.5) * 8 / 32 - 0.5, 0, 7)
    v = np.clip((points[:, 1] + 0.5) * 6 / 24 - 0.5, 0, 5)
    raw = np.stack([ndimage.map_coordinates(c, [v, u], order=1) for c in fmap.astype(float)])
    np.testing.assert_allclose(point_features(fmap, points, size), normalize_rows(raw.T), atol=2e-6)


def test_point_features_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\[C, h, w\]"):
        point_features(np.zeros((4, 4)), np.zeros((1, 2)), (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        point_features(np.full((2, 4, 4), np.nan), np.zeros((1, 2)), (4, 4))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        point_features(np.ones((2, 4, 4)), np.array([[np.nan, 1.0]]), (4, 4))


# ---------------------------------------------------------------------------------------------
# Strips, methods and the whole-map computation


@pytest.mark.parametrize("method", ["factored", "direct"])
def test_strips_equal_the_whole_map_computation(method: str) -> None:
    rng = np.random.default_rng(3)
    fmap = rng.normal(size=(16, 7, 9)).astype(np.float32)
    size = (41, 29)
    targets = rng.normal(size=(6, 16)).astype(np.float32)
    sims = np.einsum("nc,chw->nhw", normalize_rows(targets), _torch_upsampled(fmap, size))
    best = sims.reshape(6, -1).max(axis=1)
    results = [
        match_points(fmap, size, targets, method=method, strip_rows=rows)  # type: ignore[arg-type]
        for rows in (1, 2, 5, 29, None)
    ]
    for result in results:
        np.testing.assert_array_equal(result.points, results[0].points)
        np.testing.assert_allclose(result.scores, best, atol=1e-5)
        x, y = result.points.astype(int).T
        # the whole map's value at the chosen pixel is the maximum (ties at clamped borders)
        np.testing.assert_allclose(sims[np.arange(6), y, x], best, atol=1e-5)
    whole = similarity_map(fmap, size, targets[0], method=method)  # type: ignore[arg-type]
    np.testing.assert_allclose(whole, sims[0], atol=1e-5)


def test_factored_and_direct_agree_on_real_features(astronaut: np.ndarray) -> None:
    image = astronaut[::4, ::4].copy()  # 128x128 keeps the direct method quick
    extractor = PatchExtractor(downscale=4)
    fmap = extractor.feature_maps([image])[0]
    rng = np.random.default_rng(4)
    targets = point_features(fmap, rng.uniform(0, 127, size=(20, 2)), (128, 128))
    factored = match_points(fmap, (128, 128), targets, method="factored")
    direct = match_points(fmap, (128, 128), targets, method="direct", strip_rows=7)
    np.testing.assert_allclose(factored.scores, direct.scores, atol=1e-5)
    np.testing.assert_array_equal(factored.points, direct.points)


def test_zero_target_vector_scores_zero_and_does_not_crash() -> None:
    fmap = np.random.default_rng(5).normal(size=(3, 4, 4)).astype(np.float32)
    result = match_points(fmap, (8, 8), np.zeros((1, 3)))
    assert result.scores[0] == 0.0
    assert np.isfinite(result.points).all()


def test_match_points_refuses_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        match_points(np.ones((3, 4, 4)), (8, 8), np.ones((2, 5)))
    with pytest.raises(ValueError, match="method"):
        match_points(np.ones((3, 4, 4)), (8, 8), np.ones((2, 3)), method="fast")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Matching real landmarks on shifted copies

SHIFTS = [(13.0, -7.0), (13.5, -6.75), (-6.25, 9.5)]


@pytest.fixture(scope="module")
def full_res_vectors(astronaut: np.ndarray, astronaut_points: np.ndarray) -> np.ndarray:
    fmap = PatchExtractor(**FULL_RES).feature_maps([astronaut])[0]  # type: ignore[arg-type]
    return point_features(fmap, astronaut_points, (512, 512))


def _errors(found: np.ndarray, points: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    return np.linalg.norm(found - (points + np.asarray(shift)), axis=1)


@pytest.mark.parametrize("shift", SHIFTS)
def test_full_resolution_map_finds_every_landmark_within_a_pixel(
    astronaut: np.ndarray,
    astronaut_points: np.ndarray,
    full_res_vectors: np.ndarray,
    shift: tuple[float, float],
) -> None:
    extractor = PatchExtractor(**FULL_RES)  # type: ignore[arg-type]
    ref_map = extractor.feature_maps([shifted(astronaut, *shift)])[0]
    found = match_points(ref_map, (512, 512), full_res_vectors)
    errors = _errors(found.points, astronaut_points, shift)
    if float(shift[0]).is_integer() and float(shift[1]).is_integer():
        assert errors.max() < 1e-6  # identical patches: exactly the shifted pixel, cosine 1
        np.testing.assert_allclose(found.scores, 1.0, atol=1e-5)
    else:
        assert errors.max() <= 1.0  # measured: 0.90 (second-nearest pixel of the true position)


@pytest.mark.parametrize("shift", SHIFTS)
def test_quarter_resolution_map_is_upsampled_consistently(
    astronaut: np.ndarray, astronaut_points: np.ndarray, shift: tuple[float, float]
) -> None:
    extractor = PatchExtractor(**LOW_RES)  # type: ignore[arg-type]
    target_map, ref_map = extractor.feature_maps([astronaut, shifted(astronaut, *shift)])
    assert target_map.shape == (147, 128, 128)
    vectors = point_features(target_map, astronaut_points, (512, 512))
    errors = _errors(match_points(ref_map, (512, 512), vectors).points, astronaut_points, shift)
    # The shift is not a multiple of the 4-pixel cell, so the two maps sample the face at
    # different phases; measured max 0.90 px, median 0.56 px.  Tolerance 1.5 px.
    assert errors.max() <= 1.5
    assert np.median(errors) <= 0.75


def test_subpixel_refinement_gets_closer_to_a_subpixel_shift(
    astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    shift = (13.5, -6.75)
    extractor = PatchExtractor(**LOW_RES)  # type: ignore[arg-type]
    target_map, ref_map = extractor.feature_maps([astronaut, shifted(astronaut, *shift)])
    vectors = point_features(target_map, astronaut_points, (512, 512))
    plain = match_points(ref_map, (512, 512), vectors)
    refined = match_points(ref_map, (512, 512), vectors, refine=True)
    assert np.array_equal(plain.points, np.round(plain.points))  # default: whole pixels
    e_plain = _errors(plain.points, astronaut_points, shift)
    e_refined = _errors(refined.points, astronaut_points, shift)
    assert np.abs(refined.points - plain.points).max() <= 0.5 + 1e-6
    assert e_refined.mean() < 0.6 * e_plain.mean()  # measured 0.25 vs 0.60 px
    assert e_refined.max() <= 1.0


def test_average_over_k_noisy_targets_beats_one(
    astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    rng = np.random.default_rng(6)
    extractor = PatchExtractor(**LOW_RES)  # type: ignore[arg-type]
    copies = [
        np.clip(astronaut + rng.normal(0, 90, astronaut.shape), 0, 255).astype(np.uint8)
        for _ in range(8)
    ]
    per_copy = [
        point_features(m, astronaut_points, (512, 512)) for m in extractor.feature_maps(copies)
    ]
    matcher = Matcher(extractor)
    targets = [(c, FaceLandmarks(astronaut_points, (512, 512))) for c in copies]
    vectors = matcher.target_vectors(targets)
    np.testing.assert_allclose(vectors, average_vectors(per_copy), atol=1e-6)
    expected_mean = np.mean(per_copy, axis=0)
    expected = expected_mean / np.linalg.norm(expected_mean, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # re-normalised mean
    ref_map = extractor.feature_maps([shifted(astronaut, 13, -7)])[0]
    one = match_points(ref_map, (512, 512), per_copy[0])
    eight = match_points(ref_map, (512, 512), vectors)
    e_one = _errors(one.points, astronaut_points, (13, -7))
    e_eight = _errors(eight.points, astronaut_points, (13, -7))
    assert e_eight.mean() < e_one.mean() / 3  # measured 0.05 vs 0.59 px
    assert e_eight.max() <= 1.5 < e_one.max()
    assert eight.scores.mean() > one.scores.mean()


# ---------------------------------------------------------------------------------------------
# The Matcher class


def test_match_targets_routes_image_prompts_as_eq3(
    astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    extractor = PatchExtractor(**LOW_RES)  # type: ignore[arg-type]
    assert isinstance(extractor, FeatureExtractor)
    reference = shifted(astronaut, 13, -7)
    lms = FaceLandmarks(astronaut_points, (512, 512))
    targets = [
        (astronaut, lms),
        (
            shifted(astronaut, -4, 3),
            FaceLandmarks(astronaut_points + np.array([-4.0, 3.0]), (512, 512)),
        ),
    ]
    result = Matcher(extractor).match_targets(reference, targets)
    (target_images, target_prompts), (ref_images, ref_prompts) = extractor.calls
    assert [img is t[0] for img, t in zip(target_images, targets, strict=True)] == [True, True]
    assert all(p is reference for p in target_prompts)  # targets prompted by the reference
    assert ref_images[0] is reference and ref_prompts[0] is astronaut  # and vice versa
    assert result.landmarks.image_size == (512, 512)
    assert result.scores.shape == (68,)
    assert _errors(result.landmarks.points, astronaut_points, (13, -7)).max() <= 1.5


def test_matcher_checks_the_extractor_and_targets(astronaut: np.ndarray) -> None:
    class Liar(PatchExtractor):
        def feature_maps(self, images, prompts=None):  # type: ignore[no-untyped-def]
            return [m[:10] for m in super().feature_maps(images, prompts)]

    matcher = Matcher(Liar(downscale=8))
    with pytest.raises(ValueError, match="spec says"):
        matcher.feature_maps([astronaut])
    good = Matcher(PatchExtractor(downscale=8))
    wrong_size = FaceLandmarks(np.full((68, 2), 10.0), (256, 256))
    with pytest.raises(ValueError, match="256x256"):
        good.target_vectors([(astronaut, wrong_size)])
    with pytest.raises(ValueError, match="68 target vectors"):
        good.match(astronaut, np.ones((5, 147)))
