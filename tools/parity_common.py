"""Rows of the parity checks against upstream code (``tools/mofa_parity``,
``tools/aniportrait_parity``): one compared tensor each, printed as they come and as a Markdown
table at the end.  Imported by each tool's ``our_side.py`` (which puts ``tools/`` on
``sys.path``); plain torch, nothing tool-specific.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Relative tolerance (max |diff| / max |upstream|) per kind of row.  Exact rows must match
#: bit for bit; float rows allow for a different torch (kernels, summation order) in float32;
#: deep rows (through a UNet of a billion parameters or an adapter) a little more; fp16 rows
#: (tensors rounded to float16 on both sides) one float16 rounding step of the largest
#: magnitude, 2**-10, since float32 values a few ulps apart can round to neighbouring halves.
TOLERANCE = {"exact": 0.0, "float": 1e-4, "deep": 1e-3, "fp16": 2.0**-10, "info": math.inf}


@dataclass
class Row:
    """One compared tensor."""

    group: str
    name: str
    variant: str
    shape: tuple[int, ...]
    upstream_max: float
    max_abs_diff: float
    kind: str

    @property
    def relative(self) -> float:
        if self.upstream_max == 0.0:
            return 0.0 if self.max_abs_diff == 0.0 else math.inf
        return self.max_abs_diff / self.upstream_max

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE[self.kind]


class Table:
    """Collects rows and prints them.

    ``variants``: the Markdown table's difference columns, in this order, one per variant a
    row may be computed under; the default, one unnamed variant, gives plain "max abs diff"
    and "relative" columns.
    """

    def __init__(self, variants: tuple[str, ...] = ("",)) -> None:
        self.variants = variants
        self.rows: list[Row] = []

    def add(
        self,
        group: str,
        name: str,
        ours: torch.Tensor,
        theirs: torch.Tensor,
        kind: str = "float",
        variant: str = "",
    ) -> None:
        ours = ours.detach().to("cpu", torch.float64)
        theirs = theirs.detach().to("cpu", torch.float64)
        if ours.shape != theirs.shape:
            raise SystemExit(
                f"{group}/{name}: shape {tuple(ours.shape)} (ours) != {tuple(theirs.shape)}"
            )
        diff = float((ours - theirs).abs().max()) if ours.numel() else 0.0
        peak = float(theirs.abs().max()) if theirs.numel() else 0.0
        row = Row(group, name, variant, tuple(theirs.shape), peak, diff, kind)
        self.rows.append(row)
        print(self.format(row), flush=True)

    @staticmethod
    def header() -> str:
        return (
            f"{'group':<12} {'tensor':<24} {'variant':<9} {'shape':<18} {'max|upstr.|':>11} "
            f"{'max|diff|':>10} {'relative':>9}  ok"
        )

    @staticmethod
    def format(row: Row) -> str:
        shape = "x".join(str(s) for s in row.shape)
        verdict = "info" if row.kind == "info" else ("yes" if row.ok else "NO")
        return (
            f"{row.group:<12} {row.name:<24} {row.variant:<9} {shape:<18} "
            f"{row.upstream_max:>11.4g} {row.max_abs_diff:>10.3e} {row.relative:>9.2e}  {verdict}"
        )

    def markdown(self) -> str:
        """One line per tensor; rows computed per variant get a difference for each."""
        lines = [
            "| group | tensor | shape | max abs upstream | "
            + " | ".join(
                f"max abs diff ({v}) | relative" if v else "max abs diff | relative"
                for v in self.variants
            )
            + " |",
            "|---|---|---|---:|" + "---:|---:|" * len(self.variants),
        ]
        seen: dict[tuple[str, str], dict[str, Row]] = {}
        for r in self.rows:
            seen.setdefault((r.group, r.name), {})[r.variant or self.variants[0]] = r
        for (group, name), by_variant in seen.items():
            first = next(iter(by_variant.values()))
            shape = "x".join(str(s) for s in first.shape)
            cells = []
            for variant in self.variants:
                hit = by_variant.get(variant)
                cells += (
                    ["", ""] if hit is None else [f"{hit.max_abs_diff:.2e}", f"{hit.relative:.2e}"]
                )
            lines.append(
                f"| {group} | {name} | {shape} | {first.upstream_max:.4g} | "
                + " | ".join(cells)
                + " |"
            )
        return "\n".join(lines)
