"""Root of the test suite: its directory is on ``sys.path`` (pytest's ``prepend`` import
mode inserts the directory of every conftest.py), so helper modules here, such as
:mod:`common_inputs`, are importable from every test file."""

import signal

# A shell starts a background job (``cmd &`` without job control, as CI runners and nohup
# do) with SIGINT ignored, and every child inherits that: Ctrl-C tests would then wait for
# an interrupt that never arrives. Restore Python's handler so that the interrupt tests
# (and the ngspice/fit/train subprocesses they start, which reset it to the default on
# exec) see a real SIGINT.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
