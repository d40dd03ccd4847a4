"""The appearance gallery: building, the file format, domain choice, two-pass matching, import.

Real images throughout: the astronaut (dlib's landmarks) and chelsea the cat (faceshot's
hand-placed landmarks), with shifted and recoloured copies, in two domains "human" and "cat".
Features come from the patch descriptor of :mod:`faceshot_core.matching.patch_extractor`;
embeddings from :class:`HistogramEmbedder`, a colour histogram plus a gradient-orientation
histogram.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from faceshot_core.errors import FaceshotUserError, InvalidLandmarksError, MediaError
from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureSpec, ImageEmbedder
from faceshot_core.matching.gallery import (
    JSON_NAME,
    PART_ALIASES,
    REFERENCE_CODE_SPEC,
    TENSORS_NAME,
    Gallery,
    GalleryError,
    GalleryMismatchError,
    build_gallery,
    choose_domains,
    domain_similarities,
    import_reference_gallery,
    load_gallery,
    match_with_gallery,
    part_box,
    part_crops,
    part_for_folder,
)
from faceshot_core.matching.matcher import normalize_rows, point_features
from faceshot_core.matching.patch_extractor import LOW_RES, PatchExtractor, shifted
from faceshot_core.progress import ProgressEvent
from faceshot_core.sample_data import chelsea_landmarks
from faceshot_core.schema import PARTS

safetensors_numpy = pytest.importorskip("safetensors.numpy")


class HistogramEmbedder:
    """Hue/saturation histogram + 2x2-cell gradient-orientation histogram, L2-normalised."""

    name = "test-colour-hog"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._one(image) for image in images])

    @staticmethod
    def _one(image: np.ndarray) -> np.ndarray:
        im = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(im, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel()
        hist = np.sqrt(hist / max(float(hist.sum()), 1.0))
        grey = im.astype(np.float32).mean(axis=2)
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        magnitude, angle = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
        bins = np.minimum((angle / np.pi * 9).astype(int), 8)
        cells = [
            np.bincount(
                bins[y : y + 32, x : x + 32].ravel(), magnitude[y : y + 32, x : x + 32].ravel(), 9
            )
            for y in (0, 32)
            for x in (0, 32)
        ]
        hog = np.concatenate(cells)
        hog /= max(float(np.linalg.norm(hog)), 1e-9)
        v = np.concatenate([hist, hog])
        return (v / np.linalg.norm(v)).astype(np.float32)


def _put(folder: Path, name: str, image: np.ndarray, points: np.ndarray, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_image(folder / f"{name}.png", image)
    size = (image.shape[1], image.shape[0])
    save_landmarks(folder / f"{name}{suffix}", FaceLandmarks(points, size))


@pytest.fixture(scope="module")
def faces(astronaut: np.ndarray, chelsea: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from faceshot.pipeline import detect_reference

    human = np.round(detect_reference(astronaut).points).astype(np.float64)
    cat = chelsea_landmarks().points.astype(np.float64)
    return {"human": (astronaut, human), "cat": (chelsea, cat)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, faces: dict) -> Path:
    """``root/human`` and ``root/cat``: an original, a shifted and a recoloured copy each."""
    root = tmp_path_factory.mktemp("gallery_src")
    for domain, suffixes in (
        ("human", (".json", ".npy", ".pts")),
        ("cat", (".json", ".txt", ".pts")),
    ):
        image, points = faces[domain]
        _put(root / domain, "original", image, points, suffixes[0])
        _put(
            root / domain,
            "shifted",
            shifted(image, 9, -5),
            points + np.array([9.0, -5.0]),
            suffixes[1],
        )
        recoloured = np.clip(image * np.array([1.1, 0.95, 0.8]), 0, 255).astype(np.uint8)
        _put(root / domain, "recoloured", recoloured, points, suffixes[2])
    return root


@pytest.fixture(scope="module")
def extractor() -> PatchExtractor:
    return PatchExtractor(**LOW_RES)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def embedder() -> HistogramEmbedder:
    return HistogramEmbedder()


@pytest.fixture(scope="module")
def built(
    tree: Path,
    tmp_path_factory: pytest.TempPathFactory,
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
) -> tuple[Gallery, Path]:
    out = tmp_path_factory.mktemp("built") / "gallery"
    return build_gallery(tree, extractor, embedder, out), out


# ---------------------------------------------------------------------------------------------
# Building and the format


def test_build_averages_point_features_and_crop_embeddings(
    built: tuple[Gallery, Path],
    faces: dict,
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
) -> None:
    gallery, _ = built
    assert isinstance(embedder, ImageEmbedder)
    assert gallery.spec == extractor.spec and gallery.embedder == embedder.name
    assert {p: gallery.domains(p) for p in PARTS} == {p: ("cat", "human") for p in PARTS}
    # Recompute the cat domain by hand: mean over its three images of the normalised features.
    image, points = faces["cat"]
    copies = [
        (image, points),
        (shifted(image, 9, -5), points + np.array([9.0, -5.0])),
        (np.clip(image * np.array([1.1, 0.95, 0.8]), 0, 255).astype(np.uint8), points),
    ]
    size = (image.shape[1], image.shape[0])
    maps = extractor.feature_maps([img for img, _ in copies])
    feats = np.mean(
        [point_features(m, p, size) for m, (_, p) in zip(maps, copies, strict=True)], axis=0
    )
    crops = [part_crops(img, p) for img, p in copies]
    for part, indices in PARTS.items():
        dom = gallery.parts[part]["cat"]
        assert dom.num_images == 3
        np.testing.assert_allclose(dom.point_features, feats[list(indices)], atol=1e-5)
        emb = np.mean([embedder.embed([c[part]])[0] for c in crops], axis=0)
        np.testing.assert_allclose(dom.embedding, emb, atol=1e-5)


def test_save_load_round_trip(built: tuple[Gallery, Path], extractor: PatchExtractor) -> None:
    gallery, path = built
    assert sorted(p.name for p in path.iterdir()) == [JSON_NAME, TENSORS_NAME]
    loaded = load_gallery(path, spec=extractor.spec, embedder_name="test-colour-hog")
    assert loaded.spec == gallery.spec and loaded.embedder == gallery.embedder
    for part in PARTS:
        for name, dom in gallery.parts[part].items():
            other = loaded.parts[part][name]
            np.testing.assert_array_equal(other.point_features, dom.point_features)
            np.testing.assert_array_equal(other.embedding, dom.embedding)
            assert other.num_images == dom.num_images
    assert load_gallery(path / JSON_NAME).embedding_dim == gallery.embedding_dim
    manifest = json.loads((path / JSON_NAME).read_text())
    assert manifest["format"] == "faceshot-gallery" and manifest["schema_version"] == 1
    assert manifest["parts"]["eyes"]["points"] == list(range(36, 48))


def test_mismatched_spec_or_embedder_is_refused_naming_both(
    built: tuple[Gallery, Path],
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
    chelsea: np.ndarray,
) -> None:
    _, path = built
    other = FeatureSpec("stabilityai/stable-diffusion-2-1", 301, "up_blocks.1", 147)
    with pytest.raises(GalleryMismatchError) as info:
        load_gallery(path, spec=other)
    message = str(info.value)
    assert extractor.spec.model in message and "stable-diffusion-2-1" in message
    assert isinstance(info.value, FaceshotUserError)
    with pytest.raises(GalleryMismatchError, match="clip-vit"):
        load_gallery(path, embedder_name="clip-vit-h-14")

    class OtherExtractor(PatchExtractor):
        pass

    wrong = OtherExtractor(downscale=2)  # same kind of features, another resolution
    with pytest.raises(GalleryMismatchError, match="1/2"):
        match_with_gallery(chelsea, wrong, embedder, load_gallery(path))


def _copy(path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(path, tmp_path / "copy"))


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads((path / JSON_NAME).read_text())
    edit(data)
    (path / JSON_NAME).write_text(json.dumps(data))


def _edit_tensors(path: Path, edit: Callable[[dict[str, np.ndarray]], object]) -> None:
    tensors = dict(safetensors_numpy.load_file(str(path / TENSORS_NAME)))
    edit(tensors)
    safetensors_numpy.save_file(tensors, str(path / TENSORS_NAME))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda p: (p / JSON_NAME).unlink(), "no gallery.json"),
        (lambda p: (p / TENSORS_NAME).unlink(), "missing"),
        (lambda p: (p / JSON_NAME).write_text("{not json"), "invalid JSON"),
        (lambda p: (p / TENSORS_NAME).write_bytes(b"\x00" * 64), "not a readable safetensors"),
        (lambda p: _edit_json(p, lambda d: d.update(format="other")), "not a faceshot gallery"),
        (lambda p: _edit_json(p, lambda d: d.update(schema_version=2)), "unknown schema version 2"),
        (lambda p: _edit_json(p, lambda d: d["parts"].pop("nose")), "missing part.*nose"),
        (
            lambda p: _edit_json(p, lambda d: d["parts"]["eyes"].update(points=[1, 2])),
            "lists points",
        ),
        (lambda p: _edit_json(p, lambda d: d.update(embedding_dim=3)), "gallery.json says 3"),
        (lambda p: _edit_json(p, lambda d: d.update(extra=1)), "extra"),
        (lambda p: _edit_tensors(p, lambda t: t.pop("mouth/cat/embedding")), "mouth/cat/embedding"),
        (
            lambda p: _edit_tensors(
                p,
                lambda t: t.update({"eyes/human/point_features": np.zeros((11, 147), np.float32)}),
            ),
            r"eyes/human point features: expected shape \[12, 147\], got \[11, 147\]",
        ),
        (
            lambda p: _edit_tensors(
                p, lambda t: t["nose/cat/point_features"].__setitem__((0, 0), np.nan)
            ),
            "NaN",
        ),
        (
            lambda p: _edit_tensors(p, lambda t: t.update(stray=np.zeros(2, np.float32))),
            "unexpected tensors stray",
        ),
    ],
)
def test_malformed_galleries_are_refused_clearly(
    built: tuple[Gallery, Path],
    tmp_path: Path,
    breakage: Callable[[Path], object],
    message: str,
) -> None:
    path = _copy(built[1], tmp_path)
    breakage(path)
    with pytest.raises(GalleryError, match=message):
        load_gallery(path)


def test_missing_gallery_folder(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="does not exist"):
        load_gallery(tmp_path / "nowhere")


def test_build_errors_name_the_problem(
    tree: Path, tmp_path: Path, extractor: PatchExtractor, embedder: HistogramEmbedder
) -> None:
    out = tmp_path / "g"
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalleryError, match="no domain sub-folders"):
        build_gallery(tmp_path / "empty", extractor, embedder, out)
    root = Path(shutil.copytree(tree, tmp_path / "src"))
    (root / "toy").mkdir()
    (root / "toy" / "readme.txt.md").write_text("no images here")
    with pytest.raises(GalleryError, match="toy has no images"):
        build_gallery(root, extractor, embedder, out)
    shutil.rmtree(root / "toy")
    (root / "cat" / "shifted.txt").unlink()
    with pytest.raises(GalleryError, match=r"shifted\.png has no landmark file"):
        build_gallery(root, extractor, embedder, out)
    (root / "cat" / "shifted.png").write_bytes(b"not a png at all")
    save_landmarks(root / "cat" / "shifted.json", FaceLandmarks(np.full((68, 2), 5.0), (451, 300)))
    with pytest.raises(MediaError, match=r"shifted\.png is not a readable image"):
        build_gallery(root, extractor, embedder, out)
    assert not out.exists()  # nothing written by failed builds


def test_build_refuses_landmarks_for_another_image_size(
    tree: Path, tmp_path: Path, extractor: PatchExtractor, embedder: HistogramEmbedder
) -> None:
    root = Path(shutil.copytree(tree, tmp_path / "src"))
    save_landmarks(root / "cat" / "original.json", FaceLandmarks(np.full((68, 2), 5.0), (64, 64)))
    with pytest.raises(InvalidLandmarksError, match="64x64"):
        build_gallery(root, extractor, embedder, tmp_path / "g")


def test_build_progress_and_atomic_replacement(
    tree: Path, tmp_path: Path, extractor: PatchExtractor, embedder: HistogramEmbedder
) -> None:
    out = tmp_path / "g"
    events: list[ProgressEvent] = []
    build_gallery(tree, extractor, embedder, out, progress=events.append)
    assert [(e.done, e.total) for e in events] == [(k, 6) for k in range(1, 7)]
    assert {(e.stage, e.unit) for e in events} == {("building", "images")}
    build_gallery(tree, extractor, embedder, out)  # replacing an existing gallery is fine
    assert sorted(p.name for p in out.iterdir()) == [JSON_NAME, TENSORS_NAME]
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no temporary folders left behind
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"...")
    with pytest.raises(MediaError, match="not a gallery"):
        build_gallery(tree, extractor, embedder, photos)
    assert (photos / "holiday.jpg").exists()


# ---------------------------------------------------------------------------------------------
# Domain choice and two-pass matching


def _mirrored(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A left-right mirror (not in the gallery).  Part boxes need no index remapping: every
    part's index set is closed under the mirror's left/right exchange."""
    flipped = np.ascontiguousarray(image[:, ::-1])
    return flipped, np.stack([image.shape[1] - 1 - points[:, 0], points[:, 1]], axis=1)


@pytest.mark.parametrize("domain", ["human", "cat"])
def test_domain_choice_picks_the_right_domain_for_every_part(
    built: tuple[Gallery, Path], faces: dict, embedder: HistogramEmbedder, domain: str
) -> None:
    gallery, _ = built
    image, points = _mirrored(*faces[domain])
    assert choose_domains(gallery, embedder, image, points) == {p: domain for p in PARTS}
    sims = domain_similarities(gallery, embedder, image, points)
    other = "cat" if domain == "human" else "human"
    # measured margins 0.08 (human face boundary) to 0.34 (human mouth)
    assert all(sims[p][domain] > sims[p][other] + 0.05 for p in PARTS)


def _check_match(found: np.ndarray, points: np.ndarray, shift: tuple[float, float]) -> None:
    """Measured on the cat (human: every point within 0.71 px): median 0 / 0.71 px, 90th
    percentile 0.3 / 0.71 px, worst 6.4 / 5.7 px (the chin, flat fur) for the two shifts."""
    errors = np.linalg.norm(found - (points + np.asarray(shift)), axis=1)
    assert np.median(errors) <= 1.0
    assert np.percentile(errors, 90) <= 1.5
    assert errors.max() <= 10.0


SHIFTS = [(13.0, -7.0), (12.5, -6.5)]


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("domain", ["cat", "human"])
def test_two_pass_matching_with_best_domain_first_pass(
    built: tuple[Gallery, Path],
    faces: dict,
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
    domain: str,
    shift: tuple[float, float],
) -> None:
    gallery, _ = built
    image, points = faces[domain]
    calls_before = len(extractor.calls)
    result = match_with_gallery(
        shifted(image, *shift), extractor, embedder, gallery, first_pass="best"
    )
    assert len(extractor.calls) == calls_before + 1  # one extraction serves both passes
    assert result.domains == {p: domain for p in PARTS}
    _check_match(result.landmarks.points, points, shift)
    assert result.scores.shape == (68,) and (result.scores > 0.5).all()


@pytest.fixture(scope="module")
def colour_grey_gallery(
    tmp_path_factory: pytest.TempPathFactory,
    faces: dict,
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
) -> Gallery:
    """Domains "colour" and "grey" of the cat, whose patch features agree landmark by landmark.

    Patch descriptors have no semantics: a human's and a cat's features at the same landmark
    are unrelated, so an all-domain *average* (the default first pass) of the human/cat
    gallery matches nothing well (measured: pass-1 mean error 175 px, and wrong domains for
    some parts).  Diffusion features are meant to agree across domains; colour and grey copies
    of one cat stand in for that here.
    """
    root = tmp_path_factory.mktemp("colour_grey")
    image, points = faces["cat"]
    for domain, look in (("colour", lambda im: im), ("grey", _grey)):
        _put(root / domain, "original", look(image), points, ".json")
        moved = shifted(image, 9, -5)
        _put(root / domain, "shifted", look(moved), points + np.array([9.0, -5.0]), ".json")
    return build_gallery(root, extractor, embedder, root / "gallery")


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("look", ["colour", "grey"])
def test_two_pass_matching_with_average_first_pass(
    colour_grey_gallery: Gallery,
    faces: dict,
    extractor: PatchExtractor,
    embedder: HistogramEmbedder,
    look: str,
    shift: tuple[float, float],
) -> None:
    image, points = faces["cat"]
    reference = shifted(image, *shift)
    reference = _grey(reference) if look == "grey" else reference
    result = match_with_gallery(reference, extractor, embedder, colour_grey_gallery)
    assert result.domains == {p: look for p in PARTS}
    _check_match(result.first_pass.points, points, shift)
    _check_match(result.landmarks.points, points, shift)


def test_first_pass_must_be_known(
    built: tuple[Gallery, Path], faces: dict, extractor: PatchExtractor, embedder: HistogramEmbedder
) -> None:
    with pytest.raises(ValueError, match="first_pass"):
        match_with_gallery(faces["cat"][0], extractor, embedder, built[0], first_pass="vlm")  # type: ignore[arg-type]


def test_two_pass_matching_can_respace(
    built: tuple[Gallery, Path], faces: dict, extractor: PatchExtractor, embedder: HistogramEmbedder
) -> None:
    from faceshot_core.matching.postprocess import respace

    gallery, _ = built
    reference = shifted(faces["cat"][0], 13, -7)
    plain = match_with_gallery(reference, extractor, embedder, gallery, first_pass="best")
    cleaned = match_with_gallery(
        reference, extractor, embedder, gallery, first_pass="best", respace=True
    )
    np.testing.assert_allclose(cleaned.landmarks.points, respace(plain.landmarks.points))
    assert not np.allclose(cleaned.landmarks.points, plain.landmarks.points)
    np.testing.assert_array_equal(cleaned.scores, plain.scores)


def test_part_boxes_are_padded_squares_clipped_to_the_image() -> None:
    points = np.zeros((68, 2))
    points[36:48] = [[100, 50], [140, 60]] * 6  # eyes: 40 x 10 box centred at (120, 55)
    assert part_box(points, "eyes", (512, 512), margin=0.25) == (90, 25, 150, 85)
    assert part_box(points, "eyes", (130, 70), margin=0.25) == (90, 25, 130, 70)
    points[27:36] = [3, 3]  # a single point still gives a usable crop
    x0, y0, x1, y1 = part_box(points, "nose", (512, 512))
    assert (x0, y0) == (0, 0) and x1 - x0 >= 8 and y1 - y0 >= 8


# ---------------------------------------------------------------------------------------------
# Import of the reference code's target_domains


N_POINTS = {"eyes": 12, "mouth": 20, "nose": 9, "eyebrows": 10, "face_boundary": 17}
REFERENCE_FOLDERS = {
    "eyes": "eyes",
    "mouth": "mouth",
    "nose": "nose",
    "eyebrows": "eyebrow",
    "face_boundary": "face",
}


def _reference_tree(root: Path, channels: int = 8, dim: int = 5) -> dict[tuple[str, str], tuple]:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    made = {}
    for part, folder in REFERENCE_FOLDERS.items():
        for domain in ("animal", "human"):
            d = root / folder / domain
            d.mkdir(parents=True)
            diff = rng.normal(size=(N_POINTS[part], channels)).astype(np.float32)
            clip = rng.normal(size=(1, dim)).astype(np.float32)
            torch.save(
                torch.from_numpy(diff).half(), d / "diff_feature.pt"
            )  # fp16, as saved on GPU
            torch.save(torch.from_numpy(clip), d / "clip_feature.pt")
            made[part, domain] = (diff, clip)
    return made


def test_import_reference_gallery(tmp_path: Path) -> None:
    made = _reference_tree(tmp_path / "target_domains")
    spec = FeatureSpec("stabilityai/stable-diffusion-2-1", 301, "up_blocks.1", 8)
    out = tmp_path / "imported"
    import_reference_gallery(tmp_path / "target_domains", out, spec=spec, embedder_name="clip-h")
    gallery = load_gallery(out, spec=spec, embedder_name="clip-h")
    for (part, domain), (diff, clip) in made.items():
        dom = gallery.parts[part][domain]
        np.testing.assert_allclose(dom.point_features, diff, atol=1e-2)  # went through fp16
        np.testing.assert_array_equal(dom.embedding, clip[0])
        assert dom.num_images is None
    vectors = gallery.target_vectors({p: "animal" for p in PARTS})
    np.testing.assert_allclose(
        vectors[36:48], normalize_rows(gallery.parts["eyes"]["animal"].point_features)
    )


def test_reference_code_defaults() -> None:
    assert REFERENCE_CODE_SPEC.timestep == 301 and REFERENCE_CODE_SPEC.channels == 1280
    assert REFERENCE_CODE_SPEC.block == "up_blocks.1" and REFERENCE_CODE_SPEC.image_prompt is None
    assert part_for_folder("Face-Boundary") == "face_boundary"
    assert part_for_folder("eyebrow") == "eyebrows"
    assert part_for_folder("ears") is None
    assert all(part_for_folder(p) == p for p in PART_ALIASES)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: shutil.rmtree(r / "face"), r"face_boundary \(looked for"),
        (lambda r: (r / "ears" / "cat").mkdir(parents=True), "unknown part folder 'ears'"),
        (lambda r: shutil.copytree(r / "eyebrow", r / "brows"), "both"),
        (
            lambda r: (r / "nose" / "human" / "clip_feature.pt").unlink(),
            r"clip_feature\.pt is missing",
        ),
        (lambda r: (r / "mouth" / "human" / "diff_feature.pt").write_bytes(b"junk"), "refused"),
    ],
)
def test_import_refuses_bad_trees(
    tmp_path: Path, breakage: Callable[[Path], object], message: str
) -> None:
    root = tmp_path / "target_domains"
    _reference_tree(root)
    breakage(root)
    spec = FeatureSpec("sd", 301, "up_blocks.1", 8)
    with pytest.raises(GalleryError, match=message):
        import_reference_gallery(root, tmp_path / "out", spec=spec, embedder_name="clip-h")
    assert not (tmp_path / "out").exists()


def test_import_checks_shapes(tmp_path: Path) -> None:
    root = tmp_path / "target_domains"
    _reference_tree(root, channels=8)
    spec = FeatureSpec("sd", 301, "up_blocks.1", 1280)
    with pytest.raises(GalleryError, match=r"expected \[10, 1280\] \(eyebrows has 10 points\)"):
        import_reference_gallery(root, tmp_path / "out", spec=spec, embedder_name="clip-h")


class _Payload:
    """A pickle that runs code when loaded: writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_import_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    root = tmp_path / "target_domains"
    _reference_tree(root)
    marker = tmp_path / "marker"
    evil = root / "eyes" / "human" / "diff_feature.pt"
    torch.save(_Payload(marker), evil)
    torch.load(evil, weights_only=False)  # proof that the payload is live
    assert marker.read_text() == "ran"
    marker.unlink()
    spec = FeatureSpec("sd", 301, "up_blocks.1", 8)
    with pytest.raises(GalleryError, match=r"diff_feature\.pt: refused"):
        import_reference_gallery(root, tmp_path / "out", spec=spec, embedder_name="clip-h")
    assert not marker.exists()


def test_same_model_by_hub_id_or_folder_name_is_compatible() -> None:
    """A local copy of a model (named by its folder) matches a gallery tagged with the Hub id."""
    hub = FeatureSpec("stabilityai/stable-diffusion-2-1", 301, "up_blocks.1", 1280)
    folder = FeatureSpec("stable-diffusion-2-1", 301, "up_blocks.1", 1280)
    assert hub.compatible_with(folder) and folder.compatible_with(hub)
    assert not hub.compatible_with(FeatureSpec("stable-diffusion-v1-5", 301, "up_blocks.1", 1280))
    assert not hub.compatible_with(FeatureSpec("stable-diffusion-2-1", 261, "up_blocks.1", 1280))
    assert not hub.compatible_with(
        FeatureSpec("stable-diffusion-2-1", 301, "up_blocks.1", 1280, "ip-adapter_sd15")
    )
