"""The test suite, a package so that `tests.helpers` is importable (`pythonpath = .`).

tf-keras-vis installs a top-level package named `tests`; a regular package here, first on
the path, is the one `import tests` finds.
"""
