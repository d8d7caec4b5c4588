"""Cache keys of the network's compiled kernels.

numba's on-disk cache (``cache=True``) checks only the source file of the cached function,
but a compiled function embeds the code of the kernels it calls from other files (the SGD
loop of :mod:`.sgd` holds the reads of :mod:`.backend`, the update of :mod:`.update`, the
pulse model of :mod:`.pulses` and the random numbers of :mod:`.rng`). :func:`key_caches`
keys every cached kernel of those modules on all of their sources together, so that an edit
of any of them recompiles every kernel that may embed it instead of loading a stale one.

A backend's kernels (registered with :func:`.backend.register_tile_kernels`) are embedded
in the SGD loop's specialisation for that backend's read state, so the sources of the
package's own backends (:data:`BACKEND_MODULES`) are part of the key too; a backend's module
calls :func:`key_caches` with its own file as ``extra`` (a backend from outside the package:
clear ``pyspice_rram/network/__pycache__/sgd.sgd_samples-*`` after editing its kernels, or
set ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: the modules whose compiled kernels call each other
KERNEL_MODULES = ("rng.py", "pulses.py", "layer.py", "update.py", "backend.py", "sgd.py",
                  "periphery.py")
#: the package's tile backends with compiled kernels (paths below the package root): the SGD
#: loop embeds their kernels
BACKEND_MODULES = ("surrogate/backend.py", "surrogate/mna_backend.py")


def sources_digest(extra: tuple = ()) -> bytes:
    """SHA-256 of the sources of :data:`KERNEL_MODULES`, :data:`BACKEND_MODULES` and of the
    files ``extra``."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in ([here / name for name in KERNEL_MODULES]
                 + [here.parent / name for name in BACKEND_MODULES] + [Path(p) for p in extra]):
        h.update(path.read_bytes())
    return h.digest()


def key_caches(namespace: dict, extra: tuple = ()) -> None:
    """Key the on-disk caches of the numba dispatchers defined in the module of
    ``namespace`` (its ``globals()``) on the sources of all :data:`KERNEL_MODULES` (and the
    files ``extra``)."""
    digest = sources_digest(tuple(extra))
    module = namespace.get("__name__")
    for obj in list(namespace.values()):
        if getattr(getattr(obj, "py_func", None), "__module__", None) != module:
            continue                   # not a kernel of this module (e.g. an imported one)
        cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
        if cache_file is not None and hasattr(cache_file, "_source_stamp"):
            cache_file._source_stamp = digest
