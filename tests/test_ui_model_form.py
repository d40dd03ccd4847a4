"""The web app's option forms, read from the real backends' pydantic models and a test model."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from faceshot.settings import RunSettings
from faceshot_backends.builtin.warp_backend import WarpOptions
from faceshot_backends.diffusion import DiffusionOptions
from faceshot_backends.options import BackendOptionError, BackendOptions, parse_options

gr = pytest.importorskip("gradio")

from faceshot.ui.model_form import (  # noqa: E402  (only with gradio installed)
    FieldSpec,
    field_specs,
    make_component,
    values_to_options,
)


class Sampler(enum.Enum):
    EULER = "euler"
    DDIM = "ddim"


class Sample(BackendOptions):
    """Every kind of field the form knows, and one it does not."""

    mode: Literal["fast", "slow"] = Field(default="fast", description="how hard to try")
    sampler: Sampler = Sampler.DDIM
    frames: int | None = Field(default=None, ge=1, le=100, description="cap on frames")
    strength: float = Field(default=0.5, gt=0.0, lt=1.0)
    folder: Path = Path("out")
    tags: list[str] = Field(default_factory=list)
    size: int = Field(default=128, ge=64, le=1024, multiple_of=64)
    count: int = Field(default=3, gt=0, lt=10)
    label_text: str | None = None
    required_count: int


def by_name(specs: list[FieldSpec]) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in specs}


def defaults(specs: list[FieldSpec]) -> list[Any]:
    """What untouched inputs hand back: the default, an empty box for an unset text."""
    return ["" if s.kind == "text" and s.default is None else s.default for s in specs]


def test_warp_options_are_one_checkbox() -> None:
    (spec,) = field_specs(WarpOptions)
    assert spec.name == "mouth_interior"
    assert spec.label == "Mouth interior"
    assert spec.kind == "checkbox"
    assert spec.default is True
    assert spec.info.startswith("paint the mouth interior")
    assert not spec.optional


def test_diffusion_options_in_declaration_order() -> None:
    specs = field_specs(DiffusionOptions)
    assert [s.name for s in specs] == [
        "weights",
        "short_side",
        "decode_chunk",
        "offload",
        "compile",
    ]
    weights, short_side, decode_chunk, offload, _ = specs
    assert (weights.kind, weights.default, weights.optional) == ("text", None, True)
    assert short_side.kind == "slider" and short_side.integer
    assert (short_side.minimum, short_side.maximum, short_side.step) == (64, 2048, 1)
    assert short_side.default == 512
    assert (decode_chunk.minimum, decode_chunk.maximum, decode_chunk.default) == (1, 64, 8)
    assert offload.kind == "checkbox" and offload.default is False
    assert [s.name for s in field_specs(DiffusionOptions, exclude={"weights", "compile"})] == [
        "short_side",
        "decode_chunk",
        "offload",
    ]


def test_mofa_options() -> None:
    backend = pytest.importorskip("faceshot_mofa.backend")
    specs = by_name(field_specs(backend.MofaOptions))
    assert "MOFA-Video-Hybrid" in specs["weights"].info  # the subclass's re-description
    guidance = specs["min_guidance"]
    assert guidance.kind == "slider" and not guidance.integer
    assert (guidance.minimum, guidance.maximum, guidance.step) == (0.0, 20.0, 0.2)
    assert specs["conditioning_scale"].step == pytest.approx(0.05)
    pairing = specs["context_pairing"]
    assert pairing.kind == "dropdown"
    assert pairing.choices == ("upstream", "per_video")
    assert pairing.default == "upstream" and not pairing.optional


def test_aniportrait_options_keep_the_default_on_the_slider() -> None:
    backend = pytest.importorskip("faceshot_aniportrait.backend")
    specs = by_name(field_specs(backend.AniPortraitOptions))
    guidance = specs["guidance"]
    # 1..20 would step by 0.2, which misses the default 3.5
    assert (guidance.minimum, guidance.maximum, guidance.default) == (1.0, 20.0, 3.5)
    assert guidance.step == pytest.approx(0.1)
    assert specs["decode_chunk"].default == 1  # its own default, not DiffusionOptions'
    assert specs["batch_statistics"].kind == "checkbox"


def test_every_kind_of_field() -> None:
    specs = by_name(field_specs(Sample))
    assert specs["mode"].kind == "dropdown" and specs["mode"].choices == ("fast", "slow")
    assert specs["mode"].info == "how hard to try"
    assert specs["sampler"].kind == "dropdown"
    assert specs["sampler"].choices == ("euler", "ddim")
    assert specs["sampler"].default == "ddim"
    frames = specs["frames"]  # bounded but unset: a slider cannot be empty
    assert (frames.kind, frames.optional, frames.integer) == ("number", True, True)
    assert (frames.minimum, frames.maximum, frames.default) == (1, 100, None)
    strength = specs["strength"]  # exclusive bounds moved in by one step
    assert strength.kind == "slider" and strength.step == pytest.approx(0.01)
    assert (strength.minimum, strength.maximum) == (pytest.approx(0.01), pytest.approx(0.99))
    assert (specs["folder"].kind, specs["folder"].default) == ("text", "out")
    tags = specs["tags"]  # a factory default: starts empty, sent only when filled in
    assert (tags.kind, tags.default, tags.optional) == ("text", None, True)
    assert (specs["size"].step, specs["size"].minimum) == (64, 64)
    count = specs["count"]
    assert (count.kind, count.minimum, count.maximum, count.step) == ("slider", 1, 9, 1)
    assert specs["label_text"].label == "Label text"
    assert specs["required_count"].default is None and specs["required_count"].optional


def test_run_settings_never_crash_and_fall_back_to_text() -> None:
    specs = by_name(field_specs(RunSettings, exclude={"backend"}))
    assert "backend" not in specs
    assert specs["face"].kind == "text"  # Literal | int | tuple: no single input fits
    assert specs["matching"].kind == "text" and specs["matching"].optional
    assert specs["smoothing"].kind == "dropdown" and specs["smoothing"].optional
    assert specs["smoothing"].choices == ("one_euro",)  # no extra "none" choice: empty is None
    assert specs["head_translation"].choices == ("face", "pixels")
    assert specs["seed"].kind == "number" and specs["seed"].integer
    assert specs["max_frames"].kind == "number" and specs["max_frames"].minimum == 1


def test_components_match_their_specs() -> None:
    specs = by_name(field_specs(Sample) + field_specs(DiffusionOptions))
    slider = make_component(specs["short_side"])
    assert isinstance(slider, gr.Slider)
    assert (slider.minimum, slider.maximum, slider.step, slider.value) == (64, 2048, 1, 512)
    assert slider.label == "Short side" and slider.elem_id == "opt-short_side"
    assert slider.info == "working size: the short side, a multiple of 64"

    checkbox = make_component(specs["offload"])
    assert isinstance(checkbox, gr.Checkbox) and checkbox.value is False

    dropdown = make_component(specs["mode"])
    assert isinstance(dropdown, gr.Dropdown) and dropdown.value == "fast"
    assert [value for _, value in dropdown.choices] == ["fast", "slow"]
    assert not dropdown.allow_custom_value

    number = make_component(specs["frames"])
    assert isinstance(number, gr.Number)
    assert number.value is None and number.precision == 0
    assert (number.minimum, number.maximum) == (1, 100)

    text = make_component(specs["weights"])
    assert isinstance(text, gr.Textbox) and not text.value
    assert make_component(specs["folder"]).value == "out"
    assert make_component(specs["weights"], id_prefix="run-").elem_id == "run-weights"


def test_untouched_inputs_give_no_options() -> None:
    for model in (WarpOptions, DiffusionOptions, Sample, RunSettings):
        specs = field_specs(model)
        assert values_to_options(specs, defaults(specs)) == {}, model.__name__
        # what the components start with, as Gradio hands it to an event handler
        components = [make_component(s) for s in specs]
        raw = [c.preprocess(c.value) for c in components]
        assert values_to_options(specs, raw) == {}, model.__name__


def test_changed_values_only_and_cast() -> None:
    specs = field_specs(DiffusionOptions)
    values = defaults(specs)
    values[1] = 1024.0  # a slider hands back floats, even for an int field
    values[3] = True
    options = values_to_options(specs, values)
    assert options == {"short_side": 1024, "offload": True}
    assert type(options["short_side"]) is int
    parsed = parse_options("mofa", DiffusionOptions, options)
    assert isinstance(parsed, DiffusionOptions) and parsed.short_side == 1024

    values[0] = "/weights"
    values[2] = 3.5  # not whole: passed on for the model to refuse
    assert values_to_options(specs, values) == {
        "weights": "/weights",
        "short_side": 1024,
        "decode_chunk": 3.5,
        "offload": True,
    }


def test_empty_and_unset_inputs() -> None:
    specs = field_specs(Sample, exclude={"required_count"})
    names = [s.name for s in specs]
    values = defaults(specs)
    values[names.index("frames")] = 12.0
    values[names.index("label_text")] = "   "  # blank: still unset
    values[names.index("sampler")] = "euler"
    values[names.index("strength")] = 0.1 + 0.2 + 0.2  # float noise on the default 0.5
    assert values_to_options(specs, values) == {"frames": 12, "sampler": "euler"}
    assert Sample.model_validate({"required_count": 1, "sampler": "euler"}).sampler is Sampler.EULER

    values[names.index("frames")] = None  # cleared again
    values[names.index("folder")] = ""  # a non-optional text emptied is a value
    assert values_to_options(specs, values) == {"sampler": "euler", "folder": ""}

    run = field_specs(RunSettings)
    run_values = defaults(run)
    run_values[[s.name for s in run].index("smoothing")] = None  # cleared: raw detections
    assert values_to_options(run, run_values) == {"smoothing": None}
    assert RunSettings.from_mapping({"smoothing": None}).smoothing is None


def test_bad_value_passes_through_and_the_model_refuses_it_in_one_line() -> None:
    specs = field_specs(DiffusionOptions)
    values = defaults(specs)
    values[1] = 100.0
    options = values_to_options(specs, values)
    assert options == {"short_side": 100}
    with pytest.raises(BackendOptionError) as caught:
        parse_options("mofa", DiffusionOptions, options)
    message = str(caught.value)
    assert "\n" not in message
    assert "'mofa'" in message and "'short_side'" in message and "multiple of 64" in message


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="1 fields but 0 values"):
        values_to_options(field_specs(WarpOptions), [])


class Untyped(BaseModel):
    anything: Any = None
    pair: tuple[int, int] = (1, 2)


def test_unknown_annotations_become_text() -> None:
    anything, pair = field_specs(Untyped)
    assert anything.kind == "text" and pair.kind == "text"
    assert pair.default == "[1, 2]"
    assert values_to_options([pair], ["[1, 2]"]) == {}
