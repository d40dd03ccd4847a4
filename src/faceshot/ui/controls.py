"""The motion and backend controls, built from the layers that own them.

Nothing here re-declares a setting: the parts and their strength range come from the
retargeting (:data:`~faceshot_core.schema.PARTS`, ``MAX_STRENGTH``), head motion, smoothing and
the rest from :class:`~faceshot.settings.RunSettings`' fields, and a backend's options from its
own pydantic ``Options`` model (:mod:`faceshot.ui.model_form`), so a plugin's options appear in
the page without a line of UI code.  The values come back as a validated ``RunSettings`` and
the backend's option mapping, which ``faceshot.run`` checks exactly as it does for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from faceshot.settings import RunSettings
from faceshot.ui.model_form import FieldSpec, field_specs, make_component, values_to_options
from faceshot_backends.registry import backend_registry, get_backend
from faceshot_core.detection.choice import parse_face_choice
from faceshot_core.retarget.shaping import MAX_STRENGTH
from faceshot_core.schema import PARTS

#: RunSettings fields shown as they are (the others are set by the app or shown differently).
RUN_FIELDS = ("head_motion", "head_translation", "smoothing", "max_frames", "seed")
FACE_CHOICES = ("auto", "largest", "0", "1", "2")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class MotionControls:
    """The retargeting and run settings of the page, in the order their values arrive."""

    parts: gr.CheckboxGroup
    strengths: dict[str, gr.Slider]
    run_specs: list[FieldSpec]
    run_fields: list[Any]
    face: gr.Dropdown
    device: gr.Dropdown

    @property
    def inputs(self) -> list[Any]:
        return [self.parts, *self.strengths.values(), *self.run_fields, self.face, self.device]

    def settings(self, backend: str, values: Sequence[Any]) -> RunSettings:
        """The page's values as run settings (one clear line for a bad value)."""
        parts, rest = values[0], list(values[1:])
        strengths = dict(zip(self.strengths, rest[: len(self.strengths)], strict=True))
        rest = rest[len(self.strengths) :]
        run_values = values_to_options(self.run_specs, rest[: len(self.run_specs)])
        face_text, device = rest[len(self.run_specs) :]
        mapping: dict[str, Any] = {
            "backend": backend,
            "parts": tuple(parts) if set(parts) != set(PARTS) else None,
            "motion": {p: float(v) for p, v in strengths.items() if float(v) != 1.0} or None,
            "face": parse_face_choice(str(face_text or "auto")),
            "device": device or "auto",
            **run_values,
        }
        return RunSettings.from_mapping(mapping, caller="the run")


def motion_controls() -> MotionControls:
    """Build the controls in the current Blocks context."""
    parts = gr.CheckboxGroup(
        choices=list(PARTS), value=list(PARTS), label="Parts with local motion",
        info=RunSettings.model_fields["parts"].description, elem_id="parts",
    )  # fmt: skip
    strengths = {}
    with gr.Row():
        for part in PARTS:
            strengths[part] = gr.Slider(
                0.0, MAX_STRENGTH, value=1.0, step=0.05, label=f"{part.replace('_', ' ')} motion",
                elem_id=f"strength-{part}", min_width=120,
            )  # fmt: skip
    specs = [s for s in field_specs(RunSettings) if s.name in RUN_FIELDS]
    with gr.Row():
        run_fields = [make_component(spec, id_prefix="setting-") for spec in specs]
    with gr.Row():
        face = gr.Dropdown(
            choices=list(FACE_CHOICES), value="auto", allow_custom_value=True,
            label="Driving face", elem_id="setting-face",
            info="auto (big and central), largest, an index left to right, or x,y",
        )  # fmt: skip
        device = gr.Dropdown(
            choices=list(DEVICE_CHOICES), value="auto", allow_custom_value=True,
            label="Device", info=RunSettings.model_fields["device"].description,
            elem_id="setting-device",
        )  # fmt: skip
    return MotionControls(parts, strengths, specs, run_fields, face, device)


def backend_names() -> list[str]:
    """Registered backends by name (a plugin installed later appears on the next start)."""
    return backend_registry().names()


def backend_description(name: str) -> str:
    cls = get_backend(name)
    return f"**{name}**: {getattr(cls, 'description', '')}"


def option_specs(name: str) -> list[FieldSpec]:
    """The fields of a backend's options model (no options: an empty list)."""
    model = getattr(get_backend(name), "Options", None)
    return field_specs(model) if model is not None else []


def render_options(name: str, options_state: gr.State) -> None:
    """The backend's options form; each change stores the non-default values in the state."""
    specs = option_specs(name)
    if not specs:
        gr.Markdown(f"The {name} backend has no options.")
        return
    components = [make_component(spec, key=f"{name}:{spec.name}") for spec in specs]

    def collect(*values: Any) -> dict[str, Any]:
        return values_to_options(specs, values)

    for component in components:
        component.change(collect, components, options_state)
