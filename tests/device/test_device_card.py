"""ModelCard: JSON round trip, validation errors, derived quantities against hand formulas."""

from __future__ import annotations

import json
import math

import pytest

from pyspice_rram.device.card import (PARAMETER_INFO, RATE_REF, ModelCard, PulseScheme,
                                      area_from_diameter)


def _fitted_card() -> ModelCard:
    return ModelCard(g_min_density=1.234567890123e6, g_max_density=9.87654321e7, v_nl=0.4321,
                     v_p=1.01, v0_p=0.0987, beta_p=-0.75, v_d=1.2, v0_d=0.15, beta_d=2.5,
                     eps_bound=2e-3, c2c_sigma=0.3, d2d_g_sigma=0.05, d2d_v_sigma=0.02,
                     area_ref=area_from_diameter(300e-9),
                     scheme=PulseScheme(v_set=2.0, t_set=5e-6, v_reset=-2.8, t_reset=20e-6,
                                        v_read=0.1),
                     name="fitted", provenance={"dataset_sha256": "ab" * 32, "r2": 0.999})


def test_json_round_trip_is_exact(tmp_path):
    card = _fitted_card()
    path = card.save(tmp_path / "sub" / "card.json")
    back = ModelCard.load(path)
    assert back == card  # dataclass equality: every float bit-identical
    assert back.to_dict() == card.to_dict()
    data = json.loads(path.read_text())
    # the file carries a units table for each fit parameter, as PARAMETER_INFO states them
    assert {k: data["units"][k] for k in PARAMETER_INFO} == {k: v[2] for k, v in
                                                            PARAMETER_INFO.items()}
    assert ModelCard.from_dict(card.to_dict()) == card


@pytest.mark.parametrize("name", sorted(PARAMETER_INFO))
def test_out_of_bounds_parameter_is_named(name):
    lo, hi, unit, _ = PARAMETER_INFO[name]
    for bad in (lo - 1.0 - abs(lo), hi + 1.0 + abs(hi)):
        with pytest.raises(ValueError, match=rf"ModelCard\.{name} = .* outside"):
            ModelCard().replace(**{name: bad})


@pytest.mark.parametrize("name", ["v_p", "g_min_density", "c2c_sigma"])
def test_non_finite_parameter_is_named(name):
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match=rf"ModelCard\.{name} must be a finite number"):
            ModelCard().replace(**{name: bad})
    with pytest.raises(ValueError, match=rf"ModelCard\.{name} must be a finite number"):
        ModelCard().replace(**{name: "1.0"})


def test_other_validation_errors(tmp_path):
    with pytest.raises(ValueError, match="g_max_density must exceed g_min_density"):
        ModelCard(g_min_density=1e7, g_max_density=1e7)
    with pytest.raises(ValueError, match="eps_bound"):
        ModelCard(eps_bound=0.2)
    with pytest.raises(ValueError, match="eps_bound"):
        ModelCard(eps_bound=0.0)
    with pytest.raises(ValueError, match="area_ref"):
        ModelCard(area_ref=0.0)
    with pytest.raises(ValueError, match=r"unknown model-card keys: \['g_mn_density'\]"):
        ModelCard.from_dict(ModelCard().to_dict() | {"g_mn_density": 1.0})
    with pytest.raises(ValueError, match="v_reset must be negative"):
        PulseScheme(v_reset=1.0)
    with pytest.raises(ValueError, match="positive widths"):
        PulseScheme(t_set=0.0)
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not a JSON model card"):
        ModelCard.load(bad)
    # a card read from a dict with a nested scheme dict gets a PulseScheme back
    assert isinstance(ModelCard.from_dict(ModelCard().to_dict()).scheme, PulseScheme)


def test_derived_quantities_match_hand_formulas():
    card = _fitted_card()
    assert card.c_p == pytest.approx(1.0 - math.exp(0.75), rel=1e-15)
    assert card.c_d == pytest.approx(1.0 - math.exp(-2.5), rel=1e-15)
    a = area_from_diameter(100e-9)
    assert a == pytest.approx(math.pi * 0.25e-14, rel=1e-15)
    assert card.g_min(a) == pytest.approx(1.234567890123e6 * a, rel=1e-15)
    assert card.g_max() == pytest.approx(9.87654321e7 * card.area_ref, rel=1e-15)
    assert card.on_off == pytest.approx(9.87654321e7 / 1.234567890123e6, rel=1e-15)
    # N = beta / (c r t) with r = R0 (exp((V - V_p)/V0) - exp(-V_p/V0)), written out by hand
    r = RATE_REF * (math.exp((2.0 - 1.01) / 0.0987) - math.exp(-1.01 / 0.0987))
    assert card.n_states() == pytest.approx(-0.75 / ((1 - math.exp(0.75)) * r * 5e-6), rel=1e-13)
    rd = RATE_REF * (math.exp((1.5 - 1.2) / 0.15) - math.exp(-1.2 / 0.15))
    assert card.n_states(-1.5, 1e-3, "d") == pytest.approx(
        2.5 / ((1 - math.exp(-2.5)) * rd * 1e-3), rel=1e-13)
    lin = card.replace(beta_p=0.0)
    assert lin.n_states() == pytest.approx(1.0 / (r * 5e-6), rel=1e-13)
    assert card.n_states(v_pulse=-1.0) == math.inf  # no potentiation below 0 V
    with pytest.raises(ValueError):
        card.n_states(polarity="q")


def test_reference_card_is_paper_like():
    """1 µm device: G_min = 5 µS, G_max = 50 µS at low field, 50 states, δ/μ = 0.34."""
    card = ModelCard.reference()
    assert card.area_ref == pytest.approx(area_from_diameter(1e-6), rel=1e-15)
    assert card.g_min() == pytest.approx(5e-6, rel=1e-3)
    assert card.g_max() == pytest.approx(50e-6, rel=1e-3)
    assert round(card.n_states()) == 50
    assert card.c2c_sigma == 0.34


def test_load_refuses_a_card_missing_a_parameter_of_its_family(tmp_path):
    """A card file without ``v_nl`` (sinh read) is an error naming it, not the default."""
    import json

    p = ModelCard().save(tmp_path / "card.json")
    data = json.loads(p.read_text())
    del data["v_nl"]
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="v_nl"):
        ModelCard.load(p)
    # a parameter the family does not use may be absent (cards written before families)
    data = json.loads(ModelCard().save(tmp_path / "ok.json").read_text())
    del data["gamma_p"], data["n_f"]
    (tmp_path / "ok.json").write_text(json.dumps(data))
    assert ModelCard.load(tmp_path / "ok.json").v_nl == ModelCard().v_nl


def test_layers_of_the_default_family_refuse_other_families():
    """The network's device model reads beta_p/n_states of the threshold dynamics: a
    soft-bounds card must be refused with the family named, not mapped silently."""
    from pyspice_rram.network.cells import DeviceSpec

    card = ModelCard(dynamics="soft_bounds", g_map="log", name="gong")
    with pytest.raises(ValueError, match="soft_bounds"):
        DeviceSpec.from_card(card)
    assert DeviceSpec.from_card(ModelCard()).n_states >= 1
