"""Vector-matrix-multiply (VMM) backends: how a layer's crossbar is read.

A backend answers the two reads of a layer, batched over rows of ``x``/``d``:

* forward read (rows driven, column currents sensed):  ``y = x_aug @ W``  with
  ``x_aug = [x, 1]`` (the last crossbar row is the bias row, driven at the read voltage);
* transposed read (columns driven, row currents sensed): ``z = d @ W[:-1].T``.

``W`` is the ``(n_in + 1, n_out)`` read-weight matrix of the layer (``LayerState.Wr``); a
backend that models the circuit (e.g. a surrogate of a crossbar tile fitted on ngspice
results) can also look at the device conductances through :meth:`VMMBackend.bind`, which
hands it the network before training. The :class:`IdealBackend` (exact matrix products) is
the default; it is also compiled into the per-sample training loop, so a non-ideal backend
runs the slower Python per-sample path of :mod:`.train` (reads here, updates in numba).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class VMMBackend:
    """Interface of a crossbar read model. Subclasses override :meth:`forward`/:meth:`transpose`.

    Attributes
    ----------
    ideal : bool
        True only when reads equal exact matrix products (enables the compiled loop).
    """

    ideal: bool = False

    def bind(self, network: Any) -> None:
        """Called once with the :class:`~.train.Network` before reads (default: nothing)."""

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Forward read of ``layer``: ``x`` (B, n_in) -> pre-activations (B, n_out)."""
        raise NotImplementedError

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Transposed read of ``layer``: ``d`` (B, n_out) -> (B, n_in) (bias row excluded)."""
        raise NotImplementedError


class IdealBackend(VMMBackend):
    """Exact reads: ``y = x W[:-1] + W[-1]``, ``z = d W[:-1]^T`` (float32 matrix products)."""

    ideal = True

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        return x @ W[:-1] + W[-1]

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(np.asarray(d, dtype=np.float32))
        return d @ W[:-1].T


class ReadNoiseBackend(IdealBackend):
    """Ideal reads plus Gaussian output noise of relative size ``sigma`` (of the output rms).

    A minimal non-ideal backend: it exercises the Python per-sample path and shows how a
    tile surrogate plugs in. ``seed`` makes it reproducible.
    """

    ideal = False

    def __init__(self, sigma: float = 0.01, seed: int = 0):
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)

    def _noisy(self, y: np.ndarray) -> np.ndarray:
        if self.sigma <= 0:
            return y
        rms = float(np.sqrt(np.mean(y * y))) + 1e-12
        return (y + self.sigma * rms * self.rng.standard_normal(y.shape)).astype(np.float32)

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self._noisy(super().forward(layer, W, x))

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self._noisy(super().transpose(layer, W, d))


BACKENDS = {"ideal": IdealBackend, "read-noise": ReadNoiseBackend}


def make_backend(spec: str | VMMBackend | None) -> VMMBackend:
    """A backend from a name (``"ideal"``, ``"read-noise"``, ``"surrogate"``), an instance,
    or None (ideal)."""
    if spec is None:
        return IdealBackend()
    if isinstance(spec, VMMBackend):
        return spec
    if spec == "surrogate" and spec not in BACKENDS:
        from ..surrogate import backend as _surrogate_backend  # noqa: F401  (registers itself)
    if spec not in BACKENDS:
        raise ValueError(f"unknown VMM backend {spec!r}; choose from {sorted(BACKENDS)}")
    return BACKENDS[spec]()
