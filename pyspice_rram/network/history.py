"""HDF5 run store: per-epoch history, tracked synapse weights and a resumable checkpoint.

Layout of a run file (written atomically: a temporary file replaced at the end of every
epoch, so a killed run leaves the last complete epoch)::

    /                      attrs: config (JSON), dataset, format, completed_epochs, phase
    /epochs/train_acc      (E+1,) fraction correct on the full training set (index 0 = before
    /epochs/test_acc       (E+1,)  training), test set; MSE = mean over samples and outputs of
    /epochs/train_mse      (E+1,)  (o - t)^2
    /epochs/test_mse       (E+1,)
    /epochs/online_acc     (E+1,) accuracy of the predictions made while training
    /epochs/phase          (E+1,) active array (hybrid: 0 big, 1 small)
    /epochs/updates        (E+1, L, A) synapses that received >= 1 pulse, per layer, array
    /epochs/pulses         (E+1, L, A) pulses applied
    /epochs/refreshes      (E+1, L, A) pair refreshes (reset + re-program)
    /epochs/wall_s         (E+1,) seconds of training per epoch
    /epochs/samples        (E+1,) training samples of the epoch          (cost ledger:
    /epochs/reads_forward  (E+1, L) forward reads of each layer           :mod:`.ledger`;
    /epochs/reads_transposed (E+1, L) transposed reads of each layer      -1: not counted)
    /epochs/update_cycles  (E+1, L, A) samples whose update pulsed array A of layer L
    /epochs/adc_full_scale (E+1, 2, 2, T) ADC full scale per layer, direction (forward,
                           transposed) and tile (quantised read paths only, :mod:`.periphery`)
    /track/samples         (T,)   training samples seen at each record
    /track/weights         (T, A, n) per-array weight of the tracked synapses (layer 2)
    /track/index           (n, 2) (input row, output column) of the tracked synapses
    /checkpoint/layer<l>/  arrays of each LayerState (Wa, Wr, S, G0, GR, gain, ip, fp)
    /final/layer<l>/W      final read weights (when config.save_weights)
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserInputError
from .circuit_spec import circuit_table
from .periphery import periphery_table

FORMAT = "pyspice-rram-train-1"
EPOCH_KEYS = ("train_acc", "test_acc", "train_mse", "test_mse", "online_acc", "phase",
              "updates", "pulses", "refreshes", "wall_s")
#: Per-epoch fields of the cost ledger (:mod:`.ledger`), absent from run files written
#: before it; epochs of a resumed older run that were not counted hold -1.
LEDGER_KEYS = ("samples", "reads_forward", "reads_transposed", "update_cycles",
               "adc_full_scale")


@dataclass
class History:
    """In-memory run history (lists per epoch, index 0 = before training)."""

    config: dict
    dataset: str = ""
    epochs: dict = field(default_factory=lambda: {k: [] for k in EPOCH_KEYS})
    track_samples: list = field(default_factory=list)
    track_weights: list = field(default_factory=list)
    track_index: np.ndarray | None = None

    @property
    def completed_epochs(self) -> int:
        return max(0, len(self.epochs["train_acc"]) - 1)

    def append(self, **values: Any) -> None:
        n = len(self.epochs["train_acc"])
        for k in EPOCH_KEYS:
            self.epochs[k].append(values[k])
        for k in LEDGER_KEYS:
            if k not in values:
                continue
            rows = self.epochs.setdefault(k, [])
            if len(rows) < n:       # a resumed run from before the ledger: not counted
                rows[:0] = [np.full_like(np.asarray(values[k]), -1)] * (n - len(rows))
            rows.append(values[k])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.epochs.items()}

    def summary(self) -> dict[str, float]:
        a = self.arrays()
        return {"final_train_acc": float(a["train_acc"][-1]),
                "final_test_acc": float(a["test_acc"][-1]),
                "best_test_acc": float(a["test_acc"].max()),
                "epochs": self.completed_epochs}


def save_run(path: str | Path, history: History, layers: list | None = None,
             final_weights: list[np.ndarray] | None = None, phase: int = 0) -> Path:
    """Write ``history`` (and a checkpoint of ``layers``) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)                 # mkstemp makes 0600; a run file is a normal file
    try:
        _write_run(tmp, history, layers, final_weights, phase)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_run(tmp: Path, history: History, layers: list | None,
               final_weights: list[np.ndarray] | None, phase: int) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["config"] = json.dumps(history.config)
        f.attrs["dataset"] = history.dataset
        f.attrs["completed_epochs"] = history.completed_epochs
        f.attrs["phase"] = phase
        g = f.create_group("epochs")
        for k, v in history.arrays().items():
            g.create_dataset(k, data=v)
        t = f.create_group("track")
        t.create_dataset("samples", data=np.asarray(history.track_samples, dtype=np.int64))
        if history.track_weights:
            t.create_dataset("weights", data=np.asarray(history.track_weights, np.float32))
        if history.track_index is not None:
            t.create_dataset("index", data=history.track_index)
        if layers is not None:
            c = f.create_group("checkpoint")
            for li, st in enumerate(layers):
                lg = c.create_group(f"layer{li}")
                for name, arr in st._asdict().items():
                    lg.create_dataset(name, data=arr, compression="gzip" if arr.size > 4096
                                      else None, compression_opts=1 if arr.size > 4096 else None)
        if final_weights is not None:
            fg = f.create_group("final")
            for li, w in enumerate(final_weights):
                fg.create_dataset(f"layer{li}/W", data=w)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(path: str | Path | None):
    """Hold ``<path>.lock`` while a run file is written: a second writer to the same run file
    gets a ``ValueError`` naming the holder. A lock left by a dead process of this host (a
    killed run) is taken over."""
    if path is None:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    me = f"{socket.gethostname()} {os.getpid()}"
    for attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = lock.read_text().strip()
            except FileNotFoundError:
                continue
            host, _, pid = owner.partition(" ")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                lock.unlink(missing_ok=True)          # stale: its writer was killed
                continue
            raise UserInputError(f"{path} is being written by another process (pid {pid or '?'} "
                             f"on {host or '?'}); if it is gone, remove {lock}") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    else:
        raise UserInputError(f"{path}: could not take the lock {lock}")
    try:
        yield
    finally:
        try:
            if lock.read_text().strip() == me:
                lock.unlink()
        except FileNotFoundError:
            pass


def _run_identity(config: dict) -> dict:
    """The part of a run's config that makes it the same run (not ``epochs``: continuing
    is more epochs; not where the data lie; a card file given relative or absolute)."""
    d = dict(config)
    d.pop("epochs", None)
    d.pop("mnist_path", None)
    d["circuit"] = circuit_table(d.get("circuit"))    # run files before the [circuit] table
    d["periphery"] = periphery_table(d.get("periphery"))   # ... before [periphery]
    if d.get("card"):
        d["card"] = str(Path(d["card"]).resolve())
    return d


def check_overwrite(path: str | Path | None, config: dict, *, force: bool = False,
                    resume: bool = False) -> None:
    """Refuse to replace an existing file at ``path`` that is not this run.

    A file that holds a run of another config (apart from ``epochs``), or that is not a
    training run file at all, is only replaced with ``force``; the same run may be
    re-trained (its file is replaced after the first epoch) or continued with ``resume``.

    Raises
    ------
    UserInputError
        Naming the file and what it holds.
    """
    if path is None or force:
        return
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"run file {path} is a directory; give a file (.h5)")
    if not path.exists():
        return
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            stored = json.loads(f.attrs["config"]) if fmt == FORMAT else None
    except (OSError, KeyError, ValueError):
        stored = None
    if stored is None:
        raise UserInputError(f"{path} exists and is not a training run file; not overwritten",
                             hint="choose another output, or force=True (--force) to "
                                  "overwrite it")
    a, b = _run_identity(stored), _run_identity(json.loads(json.dumps(config)))
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        shown = ", ".join(f"{k}: stored {a.get(k)!r}, given {b.get(k)!r}" for k in diff[:3])
        raise UserInputError(
            f"{path} holds a run of another config ({stored.get('name')!r}; {shown}); not "
            f"{'resumed' if resume else 'overwritten'}",
            hint="choose another output, or force=True (--force) to overwrite it")


def load_run(path: str | Path, with_checkpoint: bool = True):
    """Read a run file: ``(History, [LayerState...] or None, phase)``."""
    from .layer import LayerState

    path = Path(path)
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise UserInputError(f"{path}: not a pyspice-rram training run file")
        hist = History(json.loads(f.attrs["config"]), str(f.attrs["dataset"]))
        for k in EPOCH_KEYS:
            hist.epochs[k] = list(f["epochs"][k][()])
        for k in LEDGER_KEYS:
            if k in f["epochs"]:
                hist.epochs[k] = list(f["epochs"][k][()])
        hist.track_samples = list(f["track/samples"][()])
        if "track/weights" in f:
            hist.track_weights = list(f["track/weights"][()])
        if "track/index" in f:
            hist.track_index = f["track/index"][()]
        layers = None
        if with_checkpoint and "checkpoint" in f:
            layers = []
            for li in range(len(f["checkpoint"])):
                lg = f["checkpoint"][f"layer{li}"]
                if "cfg" in lg:
                    st = LayerState(*(lg[n][()] for n in LayerState._fields))
                else:                               # files from before the typed layout
                    st = LayerState.from_legacy(*(lg[n][()] for n in (
                        "Wa", "Wr", "S", "G0", "GR", "gain", "ip", "fp", "stats")))
                layers.append(st)
        phase = int(f.attrs.get("phase", 0))
    return hist, layers, phase
