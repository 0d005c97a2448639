"""The value grammars the command line and scenario files share: sizes, names, dtypes, seconds,
and the typed values of the option spec (Whole, Number, Choice, Flag, Lengths, ...), each reading
TOML values and command-line text alike. Every closed choice of a run is declared here once.

Imports attnbench.errors and, lazily, the metric registry (names) only; no torch.
"""

from __future__ import annotations

from attnbench.errors import AttnbenchError

DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float64": "float64", "fp64": "float64", "double": "float64",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
MODES = ("forward", "backward", "train")
DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
EXECUTORS = ("local", "ray")


def whole(value, low: int | None = 1) -> bool:
    """A whole number (never a bool, which Python counts as one) of at least `low` (None: any)."""
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


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


AMP = ("off", "bfloat16", "float16")


def parse_amp(text: str) -> str:
    """'off', or the autocast dtype's canonical name ('bf16' -> 'bfloat16')."""
    if text.strip().lower() == "off":
        return "off"
    try:
        amp = DTYPES[text.strip().lower()]
    except KeyError:
        amp = None
    if amp not in AMP:
        raise AttnbenchError(f"--amp must be off, bf16 or fp16, not {text!r}")
    return amp


INPUTS = ("random", "pretrained", "init")


def parse_inputs(text: str) -> str:
    """random, pretrained, init or capture:FILE."""
    if text in INPUTS or text.startswith("capture:") and len(text) > len("capture:"):
        return text
    raise AttnbenchError(f"--inputs must be random, pretrained, init or capture:FILE (a file of attnbench capture), "
                         f"not {text!r}")


def parse_mode(text: str) -> str:
    if text not in MODES:
        raise AttnbenchError(f"--mode must be forward, backward or train, not {text!r}")
    return text


def parse_bytes(text: str, what: str = "max_memory") -> int:
    """'3GB', '512MB', '2GiB', '1.5G' or a byte count -> bytes (G = 2**30)."""
    raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(raw[-1:], 1)
    number = raw[:-1] if scale > 1 else raw
    try:
        value = float(number)
    except ValueError:
        value = -1
    if value <= 0:
        raise AttnbenchError(f"{what} must be a size such as 3GB or 512MB, not {text!r}")
    return int(value * scale)


def parse_seconds(text: str, what: str = "timeout") -> float:
    """'300s', '5m', '1h' or a number of seconds -> seconds."""
    raw = str(text).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        value = -1
    if value <= 0:
        raise AttnbenchError(f"{what} must be a duration such as 300s or 5m, not {text!r}")
    return value


class Value:
    """How an option's values read. `kind` is the phrase an error gives ('a positive integer');
    `check(value)` takes a TOML value (or what `parse` made of command-line text) and returns it
    as the target field wants it, raising ValueError with no text when it does not fit."""

    cli_type: type = str  # what Typer parses the flag's text as
    kind = "a value"
    grid = False  # a value or a list of them

    def parse(self, text, flag: str):
        """Command-line input (as Typer typed it) as a scenario value; AttnbenchError names the flag."""
        return text

    def check(self, value):
        return value


class Whole(Value):
    cli_type = int

    def __init__(self, low: int = 1, grid: bool = False, phrase: str = "") -> None:
        self.low, self.grid = low, grid
        self.kind = (phrase or ("a positive integer" if low == 1 else f"an integer >= {low}")) + \
            (" or a list of them" if grid else "")

    def _one(self, value) -> int:
        if not whole(value, self.low):
            raise ValueError
        return value

    def check(self, value):
        if self.grid:
            items = value if isinstance(value, list) else [value]
            if not items:
                raise ValueError
            return [self._one(v) for v in items]
        return self._one(value)


class Number(Value):
    cli_type = float
    kind = "a positive number"

    def __init__(self, grid: bool = False) -> None:
        self.grid = grid
        self.kind += " or a list of them" if grid else ""
        if grid:  # on the command line a comma list, e.g. 0.5,1,2
            self.cli_type = str

    def parse(self, text, flag: str):
        if not self.grid:
            return text
        try:
            return [float(item) for item in parse_names(text)]
        except ValueError:
            raise AttnbenchError(f"{flag} takes {self.kind} (e.g. 0.5,1,2), not {text!r}") from None

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in items):
            raise ValueError
        return [float(v) for v in items] if self.grid else float(value)


class Text(Value):
    kind = "a string"

    def __init__(self, phrase: str = "") -> None:
        self.kind = phrase or self.kind

    def check(self, value):
        if not isinstance(value, str):
            raise ValueError
        return value


class Choice(Value):
    """One of `choices` (aliases through `canonical`), or with `grid` a list of them; on the command
    line a comma list."""

    def __init__(self, choices: tuple[str, ...], grid: bool = False, canonical=None, phrase: str = "") -> None:
        self.choices, self.grid, self.canonical = choices, grid, canonical
        listed = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'
        self.kind = (phrase or listed) + (", or a list of them" if grid else "")

    def _one(self, value, flag: str | None = None):
        if not isinstance(value, str):
            raise ValueError
        if self.canonical:
            try:
                return self.canonical(value)
            except AttnbenchError:
                if flag:
                    raise
                raise ValueError from None
        if value not in self.choices:
            if flag:
                raise AttnbenchError(f"{flag} must be one of {', '.join(self.choices)}, not {value!r}")
            raise ValueError
        return value

    def parse(self, text, flag: str):
        values = [self._one(v, flag) for v in parse_names(text)] if self.grid else self._one(text, flag)
        return values

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError
        checked = [self._one(v) for v in items]
        return checked if self.grid else checked[0]


class Flag(Value):
    """A command-line switch; with `grid`, a scenario value or a list of them (the switch gives [true])."""

    cli_type = bool
    kind = "true or false"

    def __init__(self, grid: bool = False) -> None:
        self.grid = grid
        if grid:
            self.kind = "true, false or a list of them"

    def parse(self, text, flag: str):
        return [bool(text)] if self.grid else text

    def check(self, value):
        items = value if self.grid and isinstance(value, list) else [value]
        if not items or not all(isinstance(v, bool) for v in items):
            raise ValueError
        return items if self.grid else value


class Names(Value):
    """A comma list on the command line, a list of strings in a file; `validate(names, what)` may
    check them against a registry (raising AttnbenchError that starts with `what`)."""

    def __init__(self, phrase: str, validate=None) -> None:
        self.kind, self.validate = phrase, validate

    def parse(self, text, flag: str):
        names = parse_names(text)
        return list(self.validate(names, flag)) if self.validate else names

    def check(self, value):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError
        return list(self.validate(value, "")) if self.validate else value


def _metric_names(names: list[str], what: str) -> tuple[str, ...]:
    from attnbench.metrics import parse_metrics

    return parse_metrics(names, what)


class Seeds(Value):
    kind = "a list of integers"

    def parse(self, text, flag: str):
        return parse_ints(text, flag)

    def check(self, value):
        if not isinstance(value, list) or not value or not all(whole(v, low=None) for v in value):
            raise ValueError
        return value


class Layers(Value):
    """Model layers: a number, a list of them, or "all" (every layer of the inputs' model)."""

    kind = "a layer number, a list of them, or \"all\""
    grid = True

    def parse(self, text, flag: str):
        return ["all"] if text.strip() == "all" else parse_ints(text, flag)

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items or not all(v == "all" or whole(v, low=0) for v in items):
            raise ValueError
        return items


class Lengths(Value):
    kind = "a length, a list of lengths, or a range string such as \"1k..16k\""

    def parse(self, text, flag: str):
        return parse_sizes(text, flag)

    def check(self, value, what: str = "seq"):
        if isinstance(value, str):
            return parse_sizes(value, what)
        items = value if isinstance(value, list) else [value]
        if not items or not all(whole(v) for v in items):
            raise ValueError
        return items


class Grids(Value):
    """Method parameters: NAME=V1,V2 on the command line (repeatable), a table in a file."""

    kind = "a table of parameter = value or [values]"

    def parse(self, text, flag: str):
        return dict(parse_param(p) for p in text)

    def check(self, value):
        if not isinstance(value, dict):
            raise ValueError
        return value  # each grid is checked with its key's name by the scenario


class Size(Value):
    kind = "a size such as \"3GB\""

    def check(self, value):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError
        return value  # parsed with its own message by the scenario


class Duration(Value):
    kind = "a duration such as \"300s\" or \"5m\""

    def check(self, value):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError
        return value


class Tasks(Value):
    kind = ("a list of tables { name = \"TC\", seq = 4096, batch = 1, documents = ..., params = { ... } }: each task "
            "runs the grid at its own length(s), batch, documents and parameter values, and its name is the rows' task")

    def check(self, value):
        if not isinstance(value, list) or not value:
            raise ValueError
        return value
