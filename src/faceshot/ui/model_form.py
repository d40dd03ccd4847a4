"""Form inputs read from a pydantic model, so a plugin's options appear in the web app unaided.

A backend describes its options once, as a pydantic model (types, bounds, defaults,
descriptions). :func:`field_specs` reads that model into plain :class:`FieldSpec` records,
:func:`make_component` turns each into a Gradio input and :func:`values_to_options` turns what the
inputs hand back into a mapping for the model. Validation is *not* repeated here: the caller hands
the mapping to the backend's ``parse_options`` (or ``RunSettings.from_mapping``), so the page
reports the very one-line error the command line does.
"""

from __future__ import annotations

import enum
import json
import math
import types
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import gradio as gr
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

Kind = Literal["checkbox", "slider", "number", "dropdown", "text"]


@dataclass(frozen=True)
class FieldSpec:
    """One model field as the form sees it: which input, its label, default, range and choices.

    ``default`` is JSON-able (a text field's default is the text its box shows) so that an input
    left alone compares equal to it; ``None`` means "unset" (an empty box, no choice).
    ``optional`` says an empty input means ``None``.
    """

    name: str
    label: str
    kind: Kind
    default: Any = None
    info: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    integer: bool = False
    optional: bool = False


def field_specs(model: type[BaseModel], *, exclude: Collection[str] = ()) -> list[FieldSpec]:
    """The specs of ``model``'s fields in declaration order, those named in ``exclude`` left out.

    An annotation this module does not understand becomes a text field rather than an error: a
    plugin's options must never break the page that lists them.
    """
    return [_spec(name, field) for name, field in model.model_fields.items() if name not in exclude]


def _spec(name: str, field: FieldInfo) -> FieldSpec:
    annotation, optional, metadata = _unwrap(field.annotation)
    metadata = [*field.metadata, *metadata]
    required = field.default is PydanticUndefined  # required or a default_factory
    # a required field (or one built by a factory) starts empty: left empty, it is not sent
    default = None if required else to_jsonable_python(field.default, fallback=str)
    optional = optional or required
    common: dict[str, Any] = {
        "name": name,
        "label": (name[:1].upper() + name[1:]).replace("_", " "),
        "info": field.description or "",
        "optional": optional,
    }
    if annotation is bool:
        return FieldSpec(kind="checkbox", default=default, **common)
    if get_origin(annotation) is Literal:
        return FieldSpec(kind="dropdown", default=default, choices=get_args(annotation), **common)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = tuple(member.value for member in annotation)
        return FieldSpec(kind="dropdown", default=default, choices=choices, **common)
    if isinstance(annotation, type) and issubclass(annotation, (int, float)):
        return _numeric(issubclass(annotation, int), default, metadata, common)
    if default is not None and not isinstance(default, str):
        default = json.dumps(default)  # a list, tuple, mapping or model shown as JSON text
    return FieldSpec(kind="text", default=default, **common)


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """``annotation`` without ``None`` and ``Annotated``: the type, whether ``None`` was allowed,
    and the ``Annotated`` extras (where bounds such as ``Ge(1)`` of a nested type live)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif origin is Union or origin is types.UnionType:
            args = get_args(annotation)
            rest = tuple(arg for arg in args if arg is not type(None))
            if len(rest) == len(args) or not rest:
                return annotation, optional, metadata  # a real union: falls back to text
            if len(rest) > 1:
                return annotation, True, metadata  # ``A | B | None``: text as well
            annotation, optional = rest[0], True
        else:
            return annotation, optional, metadata


def _numeric(integer: bool, default: Any, metadata: list[Any], common: dict[str, Any]) -> FieldSpec:
    """A slider when both ends are known and a value is always set, else a number box.

    An optional field whose default is ``None`` gets a number box even with bounds, because a
    slider cannot be empty. Exclusive bounds (``gt``/``lt``) are moved in by one step, and a
    ``multiple_of`` is the step, so that few positions of the slider are values the model refuses.
    """
    bounds: dict[str, float] = {}
    for item in metadata:  # annotated_types Ge/Gt/Le/Lt/MultipleOf, or an Interval
        for attr in ("ge", "gt", "le", "lt", "multiple_of"):
            bound = getattr(item, attr, None)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool):
                bounds[attr] = float(bound)
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    step = bounds.get("multiple_of", 1.0 if integer else None)
    if low is not None and high is not None and step is None:
        step = _nice_step((high - low) / 100)
    if step is not None and low is not None and "ge" not in bounds:
        low += step  # from an exclusive ``gt``
    if step is not None and high is not None and "le" not in bounds:
        high -= step
    if "multiple_of" in bounds and step and low is not None:
        low = math.ceil(low / step) * step  # a slider counts its steps from its minimum
    elif not integer and step is not None and low is not None and isinstance(default, (int, float)):
        while step > 1e-6 and not _on_grid(default - low, step):
            step /= 10  # keep the default reachable: 3.5 on a 1..20 slider needs 0.1, not 0.2
    slider = low is not None and high is not None and default is not None
    return FieldSpec(
        kind="slider" if slider else "number",
        default=default,
        minimum=low,
        maximum=high,
        step=step,
        integer=integer,
        **common,
    )


def _nice_step(raw: float) -> float:
    """The largest of 1, 2 or 5 times a power of ten that is at most ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return max(m * power for m in (1, 2, 5) if m * power <= raw * (1 + 1e-9))


def _on_grid(offset: float, step: float) -> bool:
    ratio = offset / step
    return math.isclose(ratio, round(ratio), abs_tol=1e-6)


def make_component(spec: FieldSpec, *, id_prefix: str = "opt-", key: str | None = None) -> Any:
    """The Gradio input for ``spec``, with ``elem_id`` ``id_prefix + name`` for browser tests.

    Inside ``gr.render``, give each form its own ``key`` (the backend's name and the field):
    without one Gradio hands a re-rendered form the values of the previous one by position (a
    checkbox's ``True`` became the next backend's weights folder).  Nothing is preserved across
    re-renders: a fresh form shows the model's defaults, as the options it stands for do.

    Built inside a ``gr.Blocks`` it renders there, as any component does; outside one it is only
    made (useful for tests). Inputs are made interactive explicitly, since the app may build them
    before wiring them to an event.
    """
    common: dict[str, Any] = {
        "label": spec.label,
        "info": spec.info or None,
        "elem_id": f"{id_prefix}{spec.name}",
        "interactive": True,
    }
    if key is not None:
        common.update(key=key, preserved_by_key=None)
    if spec.kind == "checkbox":
        return gr.Checkbox(value=bool(spec.default), **common)
    if spec.kind == "slider":
        return gr.Slider(
            minimum=spec.minimum or 0.0,
            maximum=spec.maximum or 0.0,
            step=spec.step,
            value=spec.default,
            precision=0 if spec.integer else None,
            **common,
        )
    if spec.kind == "number":
        return gr.Number(
            value=spec.default,
            minimum=spec.minimum,
            maximum=spec.maximum,
            step=spec.step or 1,
            precision=0 if spec.integer else None,
            **common,
        )
    if spec.kind == "dropdown":
        return gr.Dropdown(
            choices=list(spec.choices or ()), value=spec.default, allow_custom_value=False, **common
        )
    return gr.Textbox(value=spec.default, **common)


def values_to_options(specs: Sequence[FieldSpec], values: Sequence[Any]) -> dict[str, Any]:
    """The options the user changed, keyed by field name, from the inputs' raw values.

    Only values that differ from the spec's default are returned, so an untouched input leaves
    the model's own default in place and a plugin's validators see only what the user set.
    Nothing is validated here: ``3.5`` for an integer field is passed on for the model to refuse.
    """
    if len(specs) != len(values):
        raise ValueError(f"{len(specs)} fields but {len(values)} values")
    options: dict[str, Any] = {}
    for spec, raw in zip(specs, values, strict=True):
        value = _convert(spec, raw)
        if not _same(value, spec.default):
            options[spec.name] = value
    return options


def _convert(spec: FieldSpec, raw: Any) -> Any:
    """``raw`` as the model expects it: whole floats to int for int fields, empty to ``None``."""
    if isinstance(raw, str) and not raw.strip() and (spec.optional or spec.kind != "text"):
        return None
    if spec.kind == "checkbox":
        return raw if raw is None else bool(raw)
    if spec.kind in ("slider", "number") and isinstance(raw, float) and spec.integer:
        return int(raw) if raw.is_integer() else raw
    return raw


def _same(value: Any, default: Any) -> bool:
    """Equal, numbers compared closely: a slider dragged back may return 0.30000000000000004."""
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(value, numbers) and isinstance(default, numbers):
        return math.isclose(value, default, rel_tol=1e-9, abs_tol=1e-12)
    return bool(value == default)
