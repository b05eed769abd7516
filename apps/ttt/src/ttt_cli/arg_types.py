"""Comma-separated argument types shared by subcommands, so a bad list is an argparse
usage error (exit 2) naming what was expected."""

from __future__ import annotations

import argparse


def lengths(text: str) -> tuple[int, ...]:
    """Token lengths such as `8192,32768`: integers >= 2."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def fractions(text: str) -> tuple[float, ...]:
    """Fractions such as `0,0.5,1`: each in 0..1."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {text!r}"
                                         ) from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected fractions in 0..1, got {text!r}")
    return values


def names(text: str) -> tuple[str, ...]:
    """Names such as `vt,fwe`: blanks around and between commas dropped."""
    return tuple(name.strip() for name in text.split(",") if name.strip())
