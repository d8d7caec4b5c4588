"""Data sets for network training: full MNIST (IDX files) and scikit-learn's 8x8 digits.

MNIST is never shipped with the package. :func:`find_mnist` looks for the four canonical
IDX files (``train-images-idx3-ubyte[.gz]`` ...) in, in this order,

1. an explicit ``path`` argument (a directory),
2. the environment variable ``PYSPICE_RRAM_MNIST``,
3. the cache directory ``$XDG_CACHE_HOME/pyspice-rram/mnist`` (``~/.cache/...``),
4. a download into that cache when ``download=True`` (needs internet),

and raises :class:`FileNotFoundError` listing every place it looked otherwise.

The embedded default, :func:`load_digits`, is scikit-learn's bundled 8x8 digits set
(1,797 images, 64 pixels with values 0..16), split into a fixed train/test partition.

Pixels are kept as ``uint8`` with a ``scale`` so that the network input is
``x = pixels * scale`` in [0, 1]; :meth:`Dataset.csr` gives the sparse (CSR) form that the
per-sample training loop iterates over (only non-zero pixels drive a crossbar row).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserInputError

#: Canonical file names of the four MNIST IDX files (without ``.gz``).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: MD5 of the canonical ``.gz`` files (checked after a download).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Mirrors tried in order by a download (``$PYSPICE_RRAM_MNIST_MIRRORS``, space-separated
#: base URLs ending in ``/``, are tried first: e.g. a lab's internal mirror).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

ENV_VAR = "PYSPICE_RRAM_MNIST"
MIRRORS_ENV_VAR = "PYSPICE_RRAM_MNIST_MIRRORS"


@dataclass
class Dataset:
    """A classification data set held as ``uint8`` pixels.

    Attributes
    ----------
    name : str
        ``"mnist"`` or ``"digits8x8"``.
    x_train, x_test : ndarray of uint8, shape (n, n_features)
        Pixel values; the network input is ``x = pixels * scale``.
    y_train, y_test : ndarray of int64, shape (n,)
        Class labels 0..9.
    scale : float
        Factor mapping pixels to [0, 1] (1/255 for MNIST, 1/16 for the 8x8 digits).
    source : str
        Where the data came from (path or package).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float
    source: str = ""
    _csr_cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` / ``n_test`` examples (``None`` keeps all)."""
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train],
                       self.x_test[:n_test], self.y_test[:n_test], self.scale,
                       self.source + (f" [subset {n_train}/{n_test}]" if n_train or n_test else ""))

    def csr(self, split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse rows of a split: ``(indptr int64, indices int32, values float32)``.

        Row ``s`` has the non-zero inputs ``values[indptr[s]:indptr[s+1]]`` at feature
        indices ``indices[...]``; values are already scaled to [0, 1].
        """
        if split not in self._csr_cache:
            x = self.x_train if split == "train" else self.x_test
            nz = x != 0
            counts = nz.sum(axis=1)
            indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            rows, cols = np.nonzero(nz)
            values = (x[rows, cols].astype(np.float32) * np.float32(self.scale))
            self._csr_cache[split] = (indptr, cols.astype(np.int32), values)
        return self._csr_cache[split]

    def dense(self, split: str = "test", start: int = 0, stop: int | None = None) -> np.ndarray:
        """Scaled float32 inputs of rows ``start:stop`` of a split."""
        x = self.x_train if split == "train" else self.x_test
        return x[start:stop].astype(np.float32) * np.float32(self.scale)


# --------------------------------------------------------------------------- 8x8 digits
def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits, split into train and test.

    Parameters
    ----------
    test_fraction : float
        Fraction of the 1,797 images held out for test (stratified by a fixed shuffle).
    seed : int
        Seed of the shuffle that defines the split.
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = bunch.data.astype(np.uint8)
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("digits8x8", x[tr], y[tr], x[te], y[te], 1.0 / 16.0,
                   "sklearn.datasets.load_digits")


# --------------------------------------------------------------------------- MNIST
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array.

    Raises
    ------
    ValueError
        If the magic number, dimensions or length do not match the IDX format.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise UserInputError(f"{path}: too short for an IDX file")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise UserInputError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserInputError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def mnist_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pyspice-rram/mnist`` (``~/.cache/pyspice-rram/mnist``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyspice-rram" / "mnist"


def _files_in(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in MNIST_FILES.items():
        for cand in (directory / (stem + ".gz"), directory / stem,
                     directory / stem.replace("-idx", ".idx")):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


def download_mnist(directory: Path) -> None:
    """Download the four ``.gz`` files into ``directory`` and check their MD5.

    Mirrors: ``$PYSPICE_RRAM_MNIST_MIRRORS`` first, then :data:`MNIST_MIRRORS`; a mirror
    that fails or serves a file with the wrong MD5 is skipped.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mirrors = tuple(os.environ.get(MIRRORS_ENV_VAR, "").split()) + MNIST_MIRRORS
    for name, md5 in MNIST_MD5.items():
        target = directory / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        last_err: Exception | None = None
        for mirror in mirrors:
            try:
                with urllib.request.urlopen(mirror + name, timeout=60) as resp:
                    payload = resp.read()
            except OSError as exc:  # URLError is an OSError
                last_err = exc
                continue
            if hashlib.md5(payload).hexdigest() != md5:
                last_err = ValueError(f"{mirror}{name}: MD5 mismatch")
                continue
            tmp = target.with_suffix(".part")
            tmp.write_bytes(payload)
            tmp.replace(target)
            break
        else:
            raise FileNotFoundError(f"could not download {name}: {last_err}")


def find_mnist(path: str | Path | None = None, download: bool = False) -> dict[str, Path]:
    """Locate the four MNIST IDX files (see the module docstring for the search order).

    Returns
    -------
    dict
        ``{"train_images": Path, "train_labels": ..., "test_images": ..., "test_labels": ...}``

    Raises
    ------
    FileNotFoundError
        When no complete set is found (and no download was requested or it failed).
    """
    tried: list[str] = []
    candidates: list[Path] = []
    if path is not None:
        candidates.append(Path(path))
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    cache = mnist_cache_dir()
    candidates.append(cache)
    for cand in candidates:
        tried.append(str(cand))
        if cand.is_dir():
            files = _files_in(cand)
            if files:
                return files
    if download:
        download_mnist(cache)
        files = _files_in(cache)
        if files:
            return files
    raise FileNotFoundError(
        "MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found in: "
        + ", ".join(tried)
        + f". Pass a directory, set {ENV_VAR}, or download into the cache "
          "(find_mnist(download=True) / pyspice-rram train --download).")


def load_mnist(path: str | Path | None = None, download: bool = False) -> Dataset:
    """Load the 60,000/10,000 MNIST split as a :class:`Dataset` (784 features, scale 1/255)."""
    files = find_mnist(path, download=download)
    arrays = {k: read_idx(p) for k, p in files.items()}
    xtr = arrays["train_images"].reshape(len(arrays["train_images"]), -1)
    xte = arrays["test_images"].reshape(len(arrays["test_images"]), -1)
    ytr = arrays["train_labels"].astype(np.int64)
    yte = arrays["test_labels"].astype(np.int64)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise UserInputError("MNIST image and label counts differ")
    return Dataset("mnist", xtr, ytr, xte, yte, 1.0 / 255.0,
                   str(files["train_images"].parent))


def load_dataset(name: str, mnist_path: str | Path | None = None,
                 download: bool = False) -> Dataset:
    """``"digits"``/``"digits8x8"`` -> :func:`load_digits`; ``"mnist"`` -> :func:`load_mnist`."""
    if name in ("digits", "digits8x8"):
        return load_digits()
    if name == "mnist":
        return load_mnist(mnist_path, download=download)
    raise UserInputError(f"unknown data set {name!r} (use 'digits' or 'mnist')")
