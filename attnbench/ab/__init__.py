"""Interleaved A/B of two revisions in one job (interleave): worktrees, one long-lived process per
side (attnbench.ab_side), rounds, and compare's verdict on the merged rows.

May import everything below: errors up to views; never the command line.
"""
