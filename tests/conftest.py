"""Root of the test suite: its directory is on ``sys.path`` (pytest's ``prepend`` import
mode inserts the directory of every conftest.py), so helper modules here, such as
:mod:`common_inputs`, are importable from every test file."""
