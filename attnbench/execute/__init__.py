"""Executing cases: q, k, v (inputs), one call in its mode (calls), the layer and model scopes
(model), a row closed with where it ran (rows), one case's measurement passes (runner),
isolated workers (workers), where cases run (launchers, ray_launcher) and the engine that runs a
list of cases and writes their rows.

May import errors, methods, measure, the metric contract, plan, results and hf; never judge,
views, ab or the command line.
"""
