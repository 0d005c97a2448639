"""Parsers for the value grammars the CLI and scenario files share (no torch import here)."""

from __future__ import annotations

from attnbench.errors import AttnbenchError

DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float64": "float64", "fp64": "float64", "double": "float64",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
MODES = ("forward", "backward", "train")


def parse_size(text: str, what: str = "value") -> int:
    """'4096' or '4k' (k = 1024) -> a positive int."""
    raw = text.strip().lower()
    scale = 1024 if raw.endswith("k") else 1
    digits = raw[:-1] if scale > 1 else raw
    if not digits.isdigit() or int(digits) <= 0:
        raise AttnbenchError(f"{what} must be a positive whole number such as 4096 or 4k, not {text!r}")
    return int(digits) * scale


def parse_sizes(text: str, what: str = "--seq") -> list[int]:
    """Comma list of sizes; 'a..b' doubles from a up to b: '1k..4k' -> [1024, 2048, 4096]."""
    out: list[int] = []
    for part in text.split(","):
        if ".." in part:
            lo_text, hi_text = part.split("..", 1)
            lo, hi = parse_size(lo_text, what), parse_size(hi_text, what)
            if hi < lo:
                raise AttnbenchError(f"{what} range {part!r} runs backwards; write it as low..high")
            while lo <= hi:
                out.append(lo)
                lo *= 2
        else:
            out.append(parse_size(part, what))
    return list(dict.fromkeys(out))


def parse_names(text: str) -> list[str]:
    """'full,skyformer' -> ['full', 'skyformer'] (empty items dropped, order kept)."""
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def parse_ints(text: str, what: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]."""
    try:
        return [int(x) for x in parse_names(text)]
    except ValueError:
        raise AttnbenchError(f"{what} takes whole numbers separated by commas, not {text!r}") from None


def parse_param(text: str) -> tuple[str, list[str]]:
    """'features=64,128' -> ('features', ['64', '128']); values are typed by the registry."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not items:
        raise AttnbenchError(f"-p/--param takes NAME=V1,V2 (e.g. -p features=64,128), not {text!r}")
    return name.strip(), items


def parse_dtype(text: str) -> str:
    """Canonical dtype name ('fp16' -> 'float16')."""
    try:
        return DTYPES[text.strip().lower()]
    except KeyError:
        raise AttnbenchError(f"unknown dtype {text!r}; use one of float32, float64, float16, bfloat16") from None


def parse_mode(text: str) -> str:
    if text not in MODES:
        raise AttnbenchError(f"--mode must be forward, backward or train, not {text!r}")
    return text
