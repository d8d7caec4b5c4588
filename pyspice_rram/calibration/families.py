"""Model families a fit may try, and which of their parameters a data set can determine.

A family is written ``"<read>/<dynamics>/<map>"`` with an optional ``"+rs"`` for a free
area-independent series resistance, e.g. ``"sinh/threshold/linear"`` (the Mo/TiOx default)
or ``"schottky/soft_bounds/log+rs"`` (a rectifying interface cell spanning decades). The
forms are those of :mod:`pyspice_rram.device.card`.

Which parameters are free depends on the data, and every parameter that is not free says
why (:func:`free_parameters`):

* pulse reads only (no DC sweep): the read I-V is seen at one voltage, so its shape is not
  identifiable; the fit uses the ``linear`` read (``G_read = A g(x)``) unless the recipe
  names another family, and then holds the shape parameters at their start values;
* one pulse amplitude per polarity and no sweep: only the rate at that amplitude is seen,
  so the e-folding voltage ``v0_p`` (``v0_d``) is held and ``v_p`` (``v_d``) carries the rate;
* no depression (potentiation) step at all: the depression (potentiation) kinetics are held.

Recipe ``[fit]`` keys: ``families`` (list of family strings, tried in turn and ranked by
BIC), ``fixed``, ``initial``, ``card``, ``starts`` (global-stage starts), ``window``
(``"data"``: hold g_min/g_max at the smallest/largest read per area).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..device.card import DYNAMICS, FAMILY_PARAMETERS, G_MAPS, READ_MODELS
from .program import Program
from ..errors import ConfigError

#: Families tried when the recipe does not name any: with DC sweeps, and pulse reads only.
DEFAULT_FAMILIES_IV = ("sinh/threshold/linear", "sinh/soft_bounds/linear",
                       "schottky/soft_bounds/log+rs", "schottky/threshold/log+rs",
                       "linear/soft_bounds/log")
DEFAULT_FAMILIES_PULSE = ("linear/threshold/linear", "linear/soft_bounds/linear",
                          "linear/threshold/log", "linear/soft_bounds/log")


@dataclass(frozen=True)
class FamilySpec:
    """One model family to fit: the three forms and whether ``r_series`` is free."""

    read_model: str = "sinh"
    dynamics: str = "threshold"
    g_map: str = "linear"
    series: bool = False

    @property
    def label(self) -> str:
        return f"{self.read_model}/{self.dynamics}/{self.g_map}" + ("+rs" if self.series else "")

    def card_fields(self) -> dict:
        """The card's family fields (``r_series`` 0 when not fitted)."""
        return {"read_model": self.read_model, "dynamics": self.dynamics, "g_map": self.g_map}


def parse_family(text: str, where: str = "family") -> FamilySpec:
    """``"schottky/soft_bounds/log+rs"`` -> :class:`FamilySpec`; ``ValueError`` naming the
    bad part otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected a string like 'sinh/threshold/linear', got {text!r}")
    body, plus, tail = text.strip().partition("+")
    if plus and tail.strip() != "rs":
        raise ConfigError(f"{where}: {text!r}: the only suffix is '+rs' (free series resistance)")
    parts = [p.strip() for p in body.split("/")]
    if len(parts) != 3:
        raise ConfigError(f"{where}: {text!r} must be '<read>/<dynamics>/<map>', e.g. "
                         f"'sinh/threshold/linear'")
    for value, allowed, what in zip(parts, (READ_MODELS, DYNAMICS, G_MAPS),
                                    ("read model", "dynamics", "conductance map")):
        if value not in allowed:
            raise ConfigError(f"{where}: {text!r}: unknown {what} {value!r}; one of {list(allowed)}")
    return FamilySpec(*parts, series=bool(plus))


def candidate_families(prog: Program, requested=None,
                       where: str = "recipe [fit] families") -> list[FamilySpec]:
    """The families to fit: the requested list (``where`` names its source in error
    messages: the recipe's ``[fit] families`` or the caller's), else the defaults for the
    data's kinds."""
    if requested:
        if isinstance(requested, str):
            requested = [requested]
        return [parse_family(t, f"{where}[{i}]") for i, t in enumerate(requested)]
    has_iv = bool((prog.kind == 0).any())
    return [parse_family(t) for t in (DEFAULT_FAMILIES_IV if has_iv else DEFAULT_FAMILIES_PULSE)]


def free_parameters(spec: FamilySpec, prog: Program,
                    fixed: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """Names of the parameters to vary, and ``{name: why it is held}`` for the others of the
    family (see the module docstring)."""
    names = list(FAMILY_PARAMETERS["common"] + FAMILY_PARAMETERS[spec.read_model]
                 + FAMILY_PARAMETERS[spec.dynamics]) + (["r_series"] if spec.series else [])
    held: dict[str, str] = {}
    has_iv = bool((prog.kind == 0).any())
    if not has_iv:
        for n in FAMILY_PARAMETERS[spec.read_model] + ("r_series",):
            if n in names:
                held[n] = "not identifiable: no DC I-V data (reads at one voltage)"
    live = prog.dt > 0
    for sign, sfx, what, step in ((1, "p", "potentiation", "potentiating (V > 0)"),
                                  (-1, "d", "depression", "depressing (V < 0)")):
        amps = np.unique(np.round(prog.v[live & (np.sign(prog.v) == sign)], 6))
        if amps.size == 0:
            for n in (f"v_{sfx}", f"v0_{sfx}", f"beta_{sfx}", f"gamma_{sfx}"):
                if n in names:
                    held[n] = f"not identifiable: no {step} step in the data"
        elif amps.size == 1 and not has_iv:
            held[f"v0_{sfx}"] = (f"not identifiable: one {what} amplitude ({amps[0]:g} V); "
                                 f"v_{sfx} carries the rate at that pulse")
    for n in fixed:
        if n in names:
            held.setdefault(n, "fixed by the recipe")
    return [n for n in names if n not in held], {n: w for n, w in held.items() if n in names}
