"""Calibration layer: load I-V sweeps and pulse trains, fit the model card jointly across
areas, and report the fit and the figures of merit.

In memory::

    ds = load_dataset("calibration/crosssim-ramps")   # warnings: ds.warnings, ds.issues
    result = fit(ds)                                   # -> FitResult, nothing written
    print(result.report()); result.card; result.quality["verdict"]; result.covariance
    result.save("out/card.json")                       # card, quality.json, .lib, .va, report

Modules: :mod:`.units` (units from headers), :mod:`.recipe` (data-set recipes), :mod:`.io`
(loaders and checks), :mod:`.program` (simulation of a data set's measurement program),
:mod:`.reference` (the synthetic reference data set), :mod:`.fitting` (joint fit: :func:`fit`),
:mod:`.metrics` (figures of merit), :mod:`.quality` (the verdict), :mod:`.report` (report
and figures), :mod:`.cli`.
"""

from .io import (ClippedPointsWarning, DataError, DataIssue, Dataset, PulseTrain,
                 SuspiciousDataWarning, Sweep, load_dataset)
from .recipe import load_recipe

__all__ = ["ClippedPointsWarning", "DataError", "DataIssue", "Dataset", "FitResult",
           "ParameterEstimate", "PulseTrain", "SuspiciousDataWarning", "Sweep", "fit",
           "fit_dataset", "load_dataset", "load_recipe"]


def __getattr__(name):
    """``fit``, ``fit_dataset``, ``FitResult``, ``ParameterEstimate`` are imported on first
    use (lmfit and SciPy take seconds to import; the CLI's other commands do not need them)."""
    if name in ("FitResult", "ParameterEstimate", "fit", "fit_dataset"):
        from . import fitting

        return getattr(fitting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
