"""The set-up of decoder shapes beyond causal, grouped and decode (attnbench.plan.case): the mask
options (a sliding window with sinks, packed documents, soft-capping) and the cache a decode step
reads, checked on their own and against the scope and mode; a document count becomes lengths."""

from __future__ import annotations

from attnbench.errors import AttnbenchError
from attnbench.plan.values import Value, parse_names, whole

CACHES = ("kv", "state")


def check_masks(setup: dict) -> None:
    """The mask options and the decode cache, each on its own and against the scope and mode."""
    window, sinks, softcap, cache = setup["window"], setup["sinks"], setup["softcap"], setup["cache"]
    if window is not None and not whole(window):
        raise AttnbenchError(f"--window must be a positive whole number of keys, not {window!r}")
    if not whole(sinks, low=0):
        raise AttnbenchError(f"--sinks must be a whole number of keys (0: none), not {sinks!r}")
    if sinks and window is None:
        raise AttnbenchError(f"--sinks {sinks} are keys a sliding window keeps in view: add --window W")
    if softcap is not None and not (isinstance(softcap, int | float) and not isinstance(softcap, bool)
                                    and softcap > 0):
        raise AttnbenchError(f"--softcap must be a positive number (Gemma 2 uses 50), not {softcap!r}")
    if cache not in CACHES:
        raise AttnbenchError(f"--cache must be kv or state, not {cache!r}")
    if cache == "state" and (setup["mode"] != "forward" or setup["scope"] != "attention"):
        raise AttnbenchError("--cache state times a decode step's forward at attention scope: leave --mode and "
                             "--scope out")
    documents = setup["documents"]
    if documents is not None and setup["q_seq_len"] is not None:
        raise AttnbenchError("--documents packs whole documents into one prefill: leave --q-seq out")
    if documents is not None and setup["inputs"] != "random":
        raise AttnbenchError(f"--documents cuts random q, k, v into documents: --inputs {setup['inputs']} is one "
                             "text; leave --documents out or use --inputs random")


def document_fields(documents: int | str | None, n: int, seed: int) -> dict:
    """The case's documents (a count) and doc_lengths at length n: given as "l1+l2+...", or a
    count whose lengths are drawn from the seed (attnbench.methods.masks.draw_lengths)."""
    if documents is None:
        return {}
    if isinstance(documents, str):
        try:
            lengths = [int(part) for part in documents.split("+")]
        except ValueError:
            lengths = []
        if not lengths or min(lengths) < 1:
            raise AttnbenchError(f"--documents takes a count (8) or lengths joined by + (300+500+224), not "
                                 f"{documents!r}")
        if sum(lengths) != n:
            raise AttnbenchError(f"--documents {documents} add up to {sum(lengths)} positions, not --seq {n}: give "
                                 f"--seq {sum(lengths)} or lengths that fill {n}")
    else:
        if not whole(documents) or documents > n:
            raise AttnbenchError(f"--documents {documents!r}: give between 1 and {n} documents at --seq {n}")
        from attnbench.methods.masks import draw_lengths

        lengths = draw_lengths(n, documents, seed)
    return {"documents": len(lengths), "doc_lengths": "+".join(str(length) for length in lengths)}


class Documents(Value):
    """Packed documents: a count (lengths drawn from the seed) or lengths joined by + ("300+500+224");
    with `grid`, a list of them (on the command line a comma list)."""

    kind = "a number of documents (8) or their lengths joined by + (\"300+500+224\"), or a list of them"
    grid = True

    def parse(self, text, flag: str):
        return [int(part) if part.isdigit() else part for part in parse_names(text)]

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items or not all(whole(v) or isinstance(v, str) and v for v in items):
            raise ValueError
        return [int(v) if isinstance(v, str) and v.isdigit() else v for v in items]
