"""Tile backends: how a layer's crossbar is read and updated (the role of aihwkit's tile).

A backend owns three operations on a layer (:class:`.layer.LayerState`, ``W`` its
``(n_in + 1, n_out)`` read weights ``Wr`` with the bias as last row):

* forward read (rows driven, column currents sensed):  ``y = x_aug @ W``  with
  ``x_aug = [x, 1]`` (the last crossbar row is the bias row, driven at the read voltage);
* transposed read (columns driven, row currents sensed): ``z = d @ W[:-1].T``;
* update ``ΔW = -η x δ^T`` realised by the cell's devices (:func:`.update.update_layer`),
  after which the backend brings its own view of the layer up to date.

Each operation exists twice: batched in Python (:meth:`TileBackend.forward` /
:meth:`TileBackend.transpose`, used for evaluation and inference) and per sample in numba,
inside the one compiled SGD loop :func:`.sgd.sgd_samples` that trains every cell with every
backend. The compiled side is a *read state* -- an instance of a named-tuple class of the
backend holding the arrays its kernels need -- returned by
:meth:`TileBackend.compiled_reads`, and three njit kernels registered for that class with
:func:`register_tile_kernels`::

    forward(reads, layer, L, idx, vals) -> z             # pre-activations of the layer
    transpose(reads, layer, L, d, e) -> scale            # e[j] * scale = (W[:-1] d)_j
    update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i, ev_n)

(forward: ``idx``/``vals`` are the rows and values of the non-zero inputs, the bias row --
the layer's last row, driven at 1 -- implied; update: ``idx[:n]``/``vals[:n]`` with the
bias row last, value 1). numba specialises the SGD loop per read-state class, so the ideal backend compiles
to the same code as a loop with the products written out. The network defines this
protocol and imports no backend implementation: backends register by name
(:func:`register_backend`, a class or a lazily imported ``"module:Class"`` string) or are
passed as instances.
"""

from __future__ import annotations

import importlib
import math
from collections import namedtuple
from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import overload

from .cells import ConfigError
from .circuit_spec import CircuitSpec
from .jitcache import key_caches
from .rng import normal, seed_state
from .update import update_layer


# --------------------------------------------------------------------------- compiled protocol
def tile_forward(reads, layer, L, idx, vals):
    """Compiled forward read of ``layer`` (state ``L``) for the inputs ``vals`` at rows
    ``idx`` plus the bias row (the last row, driven at 1): returns the pre-activations (an
    array owned by ``reads``). Dispatched on the class of ``reads``
    (:func:`register_tile_kernels`)."""
    raise NotImplementedError("tile_forward runs inside numba only")


def tile_transpose(reads, layer, L, d, e):
    """Compiled transposed read of ``layer``: writes ``e[j]`` for the rows without the bias
    and returns ``scale`` so that ``e[j] * scale`` is the read of ``d``."""
    raise NotImplementedError("tile_transpose runs inside numba only")


def tile_update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i,
                ev_n):
    """Compiled update ``ΔW = -lr vals δ^T`` on the rows ``idx[:n]`` of ``layer``."""
    raise NotImplementedError("tile_update runs inside numba only")


def register_tile_kernels(reads_class: type, forward, transpose, update) -> None:
    """Make :func:`.sgd.sgd_samples` use the njit kernels ``forward``, ``transpose`` and
    ``update`` (signatures of :func:`tile_forward`, :func:`tile_transpose`,
    :func:`tile_update`) for read states of the named-tuple class ``reads_class``."""

    def mine(reads):
        return isinstance(reads, types.BaseNamedTuple) and reads.instance_class is reads_class

    @overload(tile_forward)
    def _forward(reads, layer, L, idx, vals):
        if mine(reads):
            def impl(reads, layer, L, idx, vals):
                return forward(reads, layer, L, idx, vals)
            return impl

    @overload(tile_transpose)
    def _transpose(reads, layer, L, d, e):
        if mine(reads):
            def impl(reads, layer, L, d, e):
                return transpose(reads, layer, L, d, e)
            return impl

    @overload(tile_update)
    def _update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i,
                ev_n):
        if mine(reads):
            def impl(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j,
                     ev_i, ev_n):
                update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j,
                       ev_i, ev_n)
            return impl


# --------------------------------------------------------------------------- ideal kernels
#: read state of :class:`IdealBackend`: pre-activation buffers of layer 0 and layer 1
IdealReads = namedtuple("IdealReads", ["z0", "z1"])
#: read state of :class:`ReadNoiseBackend`: buffers, relative noise, xoshiro state
NoisyReads = namedtuple("NoisyReads", ["z0", "z1", "sigma", "rng"])


@njit(cache=True, inline="always")
def ideal_forward(reads, layer, L, idx, vals):
    """``z = W[bias] + sum_p vals[p] W[idx[p]]`` in float32 (bias row first)."""
    z = reads.z0 if layer == 0 else reads.z1
    W = L.Wr
    n_out = z.size
    b = W.shape[0] - 1
    for i in range(n_out):
        z[i] = W[b, i]
    for p in range(idx.size):
        j = idx[p]
        xv = vals[p]
        for i in range(n_out):
            z[i] += xv * W[j, i]
    return z


@njit(cache=True, inline="always")
def ideal_transpose(reads, layer, L, d, e):
    """``e[j] = sum_k W[j, k] d[k]`` (float64 accumulation), scale 1."""
    W = L.Wr
    n_out = d.size
    for j in range(e.size):
        acc = 0.0
        for k in range(n_out):
            acc += W[j, k] * d[k]
        e[j] = acc
    return 1.0


@njit(cache=True, inline="always")
def ideal_update(reads, layer, L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i,
                 ev_n):
    """The cell's update (:func:`.update.update_layer`); ideal reads keep no other state."""
    update_layer(L, idx, vals, n, delta, lr, rng, colbuf, maskbuf, ev_j, ev_i, ev_n)


@njit(cache=True)
def _add_noise(z, sigma, rng):
    if sigma <= 0.0:
        return
    ss = 0.0
    for i in range(z.size):
        ss += float(z[i]) * float(z[i])
    rms = math.sqrt(ss / max(z.size, 1)) + 1e-12
    for i in range(z.size):
        z[i] += sigma * rms * normal(rng)


@njit(cache=True)
def noisy_forward(reads, layer, L, idx, vals):
    """Ideal forward read plus Gaussian noise ``sigma * rms(z)`` per output."""
    z = ideal_forward(reads, layer, L, idx, vals)
    _add_noise(z, reads.sigma, reads.rng)
    return z


@njit(cache=True)
def noisy_transpose(reads, layer, L, d, e):
    """Ideal transposed read plus Gaussian noise ``sigma * rms(e)`` per output."""
    scale = ideal_transpose(reads, layer, L, d, e)
    _add_noise(e, reads.sigma, reads.rng)
    return scale


register_tile_kernels(IdealReads, ideal_forward, ideal_transpose, ideal_update)
register_tile_kernels(NoisyReads, noisy_forward, noisy_transpose, ideal_update)


# --------------------------------------------------------------------------- Python protocol
class TileBackend:
    """Interface of a crossbar model: batched reads in Python, per-sample kernels in numba.

    Subclasses override :meth:`forward`/:meth:`transpose` (batched reads) and
    :meth:`compiled_reads` (the read state of the compiled SGD loop; kernels registered with
    :func:`register_tile_kernels`). A backend that cannot train (reads only, e.g. a circuit
    simulator per tile) leaves :meth:`compiled_reads` raising.

    Attributes
    ----------
    network : Network or None
        The network bound by :meth:`bind`.
    """

    network: Any = None

    def bind(self, network: Any) -> None:
        """Called once with the :class:`~.train.Network` before reads and training."""
        self.network = network

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Forward read of ``layer`` with read weights ``W``: ``x`` (B, n_in) -> (B, n_out)."""
        raise NotImplementedError

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Transposed read of ``layer``: ``d`` (B, n_out) -> (B, n_in) (bias row excluded)."""
        raise NotImplementedError

    def update(self, layer: int, x: np.ndarray, delta: np.ndarray, lr: float,
               rng_state: np.ndarray) -> None:
        """One update ``ΔW = -lr x δ^T`` of ``layer`` of the bound network (x without bias)."""
        self.network.layers[layer].update(x, delta, lr, rng_state)

    def compiled_reads(self, n_samples: int) -> tuple[Any, int]:
        """``(reads, n)``: the read state of the compiled SGD loop, valid for the next ``n``
        (<= ``n_samples``) training samples. Called by the network between chunks."""
        raise ConfigError("backend", type(self).__name__,
                          "reads only: this backend has no compiled kernels and cannot train")

    def advance(self, n: int) -> None:
        """Called after the compiled loop has trained ``n`` samples with the read state."""

    def check_card(self, card: Any) -> None:
        """Refuse a network card this backend does not model (default: any card is fine)."""

    @classmethod
    def from_circuit(cls, circuit: CircuitSpec | None) -> "TileBackend":
        """The backend for the crossbar ``circuit`` (the config's ``[circuit]`` table).

        Default: ``cls()`` -- a backend with exact reads (ideal, read noise) has no circuit
        and ignores it. Backends that model the circuit (the crossbar surrogate) override
        this and check the values against the range their model holds in.
        """
        return cls()


class IdealBackend(TileBackend):
    """Exact reads: ``y = x W[:-1] + W[-1]``, ``z = d W[:-1]^T`` (float32 matrix products)."""

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        return x @ W[:-1] + W[-1]

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(np.asarray(d, dtype=np.float32))
        return d @ W[:-1].T

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        L0, L1 = self.network.layers
        return np.empty(L0.Wr.shape[1], np.float32), np.empty(L1.Wr.shape[1], np.float32)

    def compiled_reads(self, n_samples: int) -> tuple[Any, int]:
        return IdealReads(*self._buffers()), n_samples


class ReadNoiseBackend(IdealBackend):
    """Ideal reads plus Gaussian output noise of relative size ``sigma`` (of the output rms).

    A minimal non-ideal backend. ``seed`` makes it reproducible: the batched reads draw
    from ``numpy.random.default_rng(seed)``, the compiled training reads from the
    xoshiro stream ``seed_state(seed, 7)`` (both normal deviates, independent streams).
    """

    def __init__(self, sigma: float = 0.01, seed: int = 0):
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)
        self.train_rng = seed_state(seed, 7)

    def _noisy(self, y: np.ndarray) -> np.ndarray:
        if self.sigma <= 0:
            return y
        rms = float(np.sqrt(np.mean(y * y))) + 1e-12
        return (y + self.sigma * rms * self.rng.standard_normal(y.shape)).astype(np.float32)

    def forward(self, layer: int, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self._noisy(super().forward(layer, W, x))

    def transpose(self, layer: int, W: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self._noisy(super().transpose(layer, W, d))

    def compiled_reads(self, n_samples: int) -> tuple[Any, int]:
        return NoisyReads(*self._buffers(), self.sigma, self.train_rng), n_samples


#: Backends by name: a class, or ``"module:Class"`` imported when first asked for.
BACKENDS: dict[str, Any] = {"ideal": IdealBackend, "read-noise": ReadNoiseBackend,
                            "surrogate": "pyspice_rram.surrogate.backend:SurrogateBackend",
                            "mna": "pyspice_rram.surrogate.mna_backend:MNABackend"}


def backend_name(backend: TileBackend) -> str | None:
    """The registered name of a backend instance's class (None for an unregistered one)."""
    cls = type(backend)
    for name, entry in BACKENDS.items():
        if entry is cls or entry == f"{cls.__module__}:{cls.__name__}":
            return name
    return None


def register_backend(name: str, backend: Any) -> None:
    """Register a backend class (or a ``"module:Class"`` string) under ``name``."""
    BACKENDS[name] = backend


def make_backend(spec: str | TileBackend | None,
                 circuit: CircuitSpec | dict | None = None) -> TileBackend:
    """A backend from a name (see :data:`BACKENDS`), an instance, or None (ideal).

    Parameters
    ----------
    spec : str, TileBackend or None
        Backend name, a backend instance (returned as it is: it carries its own circuit),
        or None for the ideal backend.
    circuit : CircuitSpec, dict or None
        The crossbar of the tiles (:class:`.circuit_spec.CircuitSpec`; None: its defaults),
        handed to :meth:`TileBackend.from_circuit` of the named backend. Backends with exact
        reads (``ideal``, ``read-noise``) ignore it.
    """
    if isinstance(spec, TileBackend):
        return spec
    circuit = CircuitSpec.from_dict(circuit if circuit is not None else {})
    if spec is None:
        return IdealBackend.from_circuit(circuit)
    if spec not in BACKENDS:
        raise ConfigError("backend", spec, f"unknown tile backend; choose from {sorted(BACKENDS)}")
    cls = BACKENDS[spec]
    if isinstance(cls, str):
        module, _, name = cls.partition(":")
        cls = getattr(importlib.import_module(module), name)
        BACKENDS[spec] = cls
    factory = getattr(cls, "from_circuit", None)     # a registered non-TileBackend class
    return factory(circuit) if factory is not None else cls()


key_caches(globals())   # recompile when any kernel source changes (.jitcache)
