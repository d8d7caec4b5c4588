"""Calibration layer: load I-V sweeps and pulse trains, fit the model card jointly across
areas, and report the fit and the figures of merit.

Modules: :mod:`.units` (units from headers), :mod:`.recipe` (data-set recipes), :mod:`.io`
(loaders and checks), :mod:`.program` (simulation of a data set's measurement program),
:mod:`.reference` (the synthetic reference data set), :mod:`.fit` (joint fit),
:mod:`.metrics` (figures of merit), :mod:`.report` (report and figures), :mod:`.cli`.
"""

from .io import ClippedPointsWarning, DataError, Dataset, PulseTrain, Sweep, load_dataset
from .recipe import load_recipe


def fit_dataset(dataset_dir, outdir=None, progress=True, **kwargs):
    """Fit a data set and write card, .lib, .va and report; see :func:`.fit.fit_dataset`."""
    from .fit import fit_dataset as _fit

    return _fit(dataset_dir, outdir, progress=progress, **kwargs)


__all__ = ["ClippedPointsWarning", "DataError", "Dataset", "PulseTrain", "Sweep", "fit_dataset",
           "load_dataset", "load_recipe"]
