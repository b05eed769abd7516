"""The config reference (docs/config-reference.md), generated from the schema
(`ttt_train.schema`): every key with its default, its type and what it means, so the page
can never drift from what `ttt train` accepts.

    python -m ttt_train.reference docs/config-reference.md     # rewrite the page
    python -m ttt_train.reference --check docs/config-reference.md
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from ttt_train.schema import GROUPS, key_docs

HEADER = """# Config reference

Every key `ttt train` accepts, by group, with its default, its type and what it means:
generated from the schema (`ttt_train.schema`, dataclasses whose fields are the keys) by
`python -m ttt_train.reference docs/config-reference.md` (a test checks that this page is
current). Keys marked (ours) extend the official TTT-E2E keys; every other key keeps the
official meaning. Set any of them on the command line as `group.key=value`, or in an
experiment file. A value of the wrong type, or outside a key's listed values, is refused
in one line naming the key and the file that set it.
"""


def type_name(tp: Any) -> str:
    """A type as the page shows it: `int or None`, `one of 'a', 'b'`, `list of str`."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" if v != "" else '`""`' for v in typing.get_args(tp))
    if isinstance(tp, types.UnionType) or origin is typing.Union:
        return " or ".join(type_name(t) for t in typing.get_args(tp))
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of names to {type_name(typing.get_args(tp)[1])}"
    return "None" if tp is type(None) else tp.__name__


def _default(value: Any) -> str:
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return '""' if value == "" else str(value)


def reference_markdown() -> str:
    lines = [HEADER.rstrip()]
    for group in GROUPS:
        lines += ["", f"## `{group}`"]
        table_open = False
        for item in key_docs(group):
            if item.section:
                lines += ["", item.section]
                table_open = False
            if not item.dotted:
                continue
            if not table_open:
                lines += ["", "| key | default | type | meaning |", "|---|---|---|---|"]
                table_open = True
            cells = [f"`{item.dotted}`", f"`{_default(item.default)}`", type_name(item.type),
                     item.doc]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the page differs from the schema's")
    args = parser.parse_args(argv)
    text = reference_markdown()
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            print(f"{args.out} is stale: run python -m ttt_train.reference {args.out}",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
