"""Instruments, one concern per module (timing, flops, memory, error, conditioning, statistics,
bootstrap), and the machine they run on (machine/); each returns data and never prints.

Instruments may import attnbench.errors and the method contract (attnbench.methods.contract),
never a case, the registry or the record: they measure a call, whoever made it.
"""
