"""Data loaders: IDX parsing, MNIST search order and errors, 8x8 digits, sparse rows."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from pyspice_rram.network import data as D


def _write_idx(path, arr, compress=True):
    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def _fake_mnist(directory, n_train=5, n_test=3, compress=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if compress else ""
    _write_idx(directory / ("train-images-idx3-ubyte" + sfx),
               rng.integers(0, 256, (n_train, 28, 28)), compress)
    _write_idx(directory / ("train-labels-idx1-ubyte" + sfx), np.arange(n_train) % 10, compress)
    _write_idx(directory / ("t10k-images-idx3-ubyte" + sfx),
               rng.integers(0, 256, (n_test, 28, 28)), compress)
    _write_idx(directory / ("t10k-labels-idx1-ubyte" + sfx), np.arange(n_test) % 10, compress)


def test_idx_roundtrip_and_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a.gz"), arr)
    _write_idx(tmp_path / "b", arr, compress=False)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "b"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError):
        D.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">HBBI", 0, 8, 1, 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="header"):
        D.read_idx(tmp_path / "short")


def test_find_mnist_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=D.ENV_VAR):
        D.find_mnist()
    envdir = tmp_path / "env"
    envdir.mkdir()
    _fake_mnist(envdir)
    monkeypatch.setenv(D.ENV_VAR, str(envdir))
    assert D.find_mnist()["train_images"].parent == envdir
    argdir = tmp_path / "arg"
    argdir.mkdir()
    _fake_mnist(argdir, compress=False)
    assert D.find_mnist(argdir)["test_labels"].parent == argdir
    ds = D.load_mnist(argdir)
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)
    assert ds.scale == pytest.approx(1 / 255)


def test_digits_and_csr():
    ds = D.load_digits()
    assert ds.n_features == 64 and ds.n_classes == 10
    assert len(ds.y_train) + len(ds.y_test) == 1797
    indptr, idx, val = ds.csr("train")
    dense = ds.dense("train")
    s = 17
    row = np.zeros(64, np.float32)
    row[idx[indptr[s]:indptr[s + 1]]] = val[indptr[s]:indptr[s + 1]]
    np.testing.assert_allclose(row, dense[s])
    assert val.max() <= 1.0 and val.min() > 0.0


def test_real_mnist_when_available():
    try:
        files = D.find_mnist("/work/shared/data/mnist")
    except FileNotFoundError:
        pytest.skip("MNIST files not present on this machine")
    ds = D.load_mnist(files["train_images"].parent)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                               974, 1009]
    assert ds.y_train[0] == 5 and ds.y_test[0] == 7


def _shared_mnist():
    here = Path(__file__).resolve()
    for cand in (here.parents[3] / "shared" / "data" / "mnist",
                 Path("/work/shared/data/mnist")):
        if all((cand / n).is_file() for n in D.MNIST_MD5):
            return cand
    pytest.skip("MNIST .gz files not present on this machine")


def test_mnist_download_over_http(tmp_path, monkeypatch):
    # A real HTTP download from local servers: the first mirror answers 404, the second
    # serves corrupted files (MD5 mismatch), the third the real ones; the files land in
    # the cache and load.
    import functools
    import http.server
    import threading

    src = _shared_mnist()
    bad = tmp_path / "bad"
    bad.mkdir()
    for n in D.MNIST_MD5:
        (bad / n).write_bytes(b"not mnist")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler_ok = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
               for h in (handler, handler_ok)]
    for srv in servers:
        srv.RequestHandlerClass.log_message = lambda *a: None
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        p_bad, p_ok = (srv.server_address[1] for srv in servers)
        monkeypatch.setenv(D.MIRRORS_ENV_VAR, f"http://127.0.0.1:{p_bad}/missing/ "
                                              f"http://127.0.0.1:{p_bad}/bad/ "
                                              f"http://127.0.0.1:{p_ok}/")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.delenv(D.ENV_VAR, raising=False)
        with pytest.raises(FileNotFoundError):
            D.find_mnist()                       # nothing cached, no download asked
        files = D.find_mnist(download=True)
        assert files["train_images"].parent == tmp_path / "cache" / "pyspice-rram" / "mnist"
        for n in D.MNIST_MD5:
            assert (files["train_images"].parent / n).read_bytes() == (src / n).read_bytes()
        ds = D.load_mnist()                      # now found in the cache
        assert ds.x_test.shape == (10000, 784) and ds.y_test[0] == 7
    finally:
        for srv in servers:
            srv.shutdown()
