"""Benchmarks: clients of the installed `meloformer` library that print a table (and write
JSON). Run each from the repository root as a module, e.g. `python -m bench.train`; shared
helpers live in bench/common.py. Not installed with the package (pyproject includes only
meloformer, tasks and flows)."""
