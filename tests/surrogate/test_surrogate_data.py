"""Training-data generator (ngspice / MNA, resumable), fit and validation on a tiny data set."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pyspice_rram.circuit import mna
from pyspice_rram.circuit.ngspice_run import has_klu
from pyspice_rram.cli import main
from pyspice_rram.device.card import ModelCard
from pyspice_rram.surrogate.dataset import (DataSpec, generate, iter_records, sample_item,
                                            state_grid, summary)
from pyspice_rram.surrogate.fit import fit_surrogate
from pyspice_rram.surrogate.model import TileSurrogate

CARD = ModelCard.reference()


def _spec(**kw):
    base = dict(n_items=4, sizes=[16], n_vectors=3, test_fraction=0.5, mna_fraction=0.5,
                r_wire=[0.5, 5.0])
    base.update(kw)
    return DataSpec(**base)


def test_sampling_is_deterministic_and_on_the_state_grid():
    spec = DataSpec(n_items=10)
    a, b = sample_item(spec, CARD, 7), sample_item(spec, CARD, 7)
    assert a.hash() == b.hash()
    assert sample_item(spec, CARD, 8).hash() != a.hash()
    grid = state_grid(CARD)
    assert np.all(np.isin(a.x, grid))
    assert np.all(a.v_in["forward"] >= 0) and np.max(np.abs(a.v_in["transposed"])) <= \
        CARD.scheme.v_read
    for k in range(20):
        it = sample_item(spec, CARD, k)
        assert 16 <= it.x.shape[0] <= 128 and 0.1 <= it.r_wire_row <= 5.0


def test_state_grid_stays_in_the_unit_interval_for_every_curvature():
    """The top state is at most 1: NumPy's and math's expm1 differed in the last bit for
    ~5 % of the curvatures beta_p (a fitted card then drew x = 1.0000000000000002 and every
    tile of the surrogate data set was refused)."""
    import dataclasses
    import math

    betas = np.linspace(0.01, 5.0, 400)
    raw = [(-np.expm1(-b * np.arange(51) / 50) / -math.expm1(-b)).max() for b in betas]
    assert max(raw) > 1.0                          # the formula alone does overshoot
    for b in betas:
        grid = state_grid(dataclasses.replace(CARD, beta_p=float(b)))
        assert grid[0] == 0.0 and grid[-1] <= 1.0 and np.all(np.diff(grid) > 0), b
        assert grid[-1] == pytest.approx(1.0, abs=1e-12)


def test_bad_spec_rejected():
    with pytest.raises(ValueError, match="pattern"):
        DataSpec(patterns=["checkerboard"])
    with pytest.raises(ValueError, match="r_wire"):
        DataSpec(r_wire=[0.0, 1.0])


@pytest.mark.skipif(not has_klu(), reason="needs ngspice with KLU")
def test_generate_resumes_and_records_solver(tmp_path):
    path = tmp_path / "d.h5"
    spec = _spec()
    generate(path, spec, progress=False, limit=2)
    with h5py.File(path) as h5:
        first = {k: h5["items"][k]["forward/i_out"][...] for k in h5["items"]}
    assert len(first) == 2
    generate(path, spec, progress=False)          # resumes: only the 2 missing items
    s = summary(path)
    assert s["items"] == 4 and sum(s["solver"].values()) == 4
    with h5py.File(path) as h5:
        for k, arr in first.items():
            np.testing.assert_array_equal(h5["items"][k]["forward/i_out"][...], arr)
        for k in h5["items"]:
            a = h5["items"][k].attrs
            if a["solver"] == "mna":
                assert a["ngspice_agreement"] <= 1e-6
    with pytest.raises(ValueError, match="another data spec"):
        generate(path, _spec(n_vectors=4), progress=False)
    # stored currents are the solver's answer for the stored tile and inputs
    for rec in iter_records(path):
        np.testing.assert_allclose(rec.i_out, mna.solve_tile(rec.tile, rec.v_in, rec.direction),
                                   rtol=1e-6, atol=1e-15)
    # a fit on it and the CLI validation run
    sur, report = fit_surrogate(path)
    assert report["n_reads"] == sum(1 for _ in iter_records(path, "fit"))
    assert report["fit_rms_pct"] <= report["fit_rms_pct_core"] + 1e-12
    out = tmp_path / "s.json"
    sur.save(out)
    assert TileSurrogate.load(out).provenance["data_hash"] == sur.provenance["data_hash"]
    assert main(["surrogate", "validate", str(path), "--surrogate", str(out), "--split", "fit",
                 "--max-rms", "0.5"]) == 0
