"""Fabricators of the built-in datasets' released layouts, one module per plugin family.

``make_<dataset>(root, n_cases=..., seed=...)`` writes a tiny copy of a release (real folder and
file names, realistic affines, spacings and label values, quirks included) for tests and for
``harmonize demo`` (each plugin's ``fabricate()`` calls its own). They use the public helpers of
:mod:`harmonize.testing` only.
"""
