"""Hooks shared by methods that draw a fresh mask on every call (SBM, Smart Bird): their built
function exposes one draw of its mask, its diagnostics and the generator it draws from."""


class SampledHooks:
    """Mix in before Method: `class SBM(SampledHooks, Method)`."""

    def mask(self, fn, q, k):
        return fn.sampled_mask(q, k)

    def diagnostics(self, fn, q, k, v):
        return fn.diagnostics(q, k, v)

    def sampler(self, fn):
        return fn.sampler
