"""The config reference (docs/config-reference.md), generated from the schema: every key of
the base files with its default, its type (`config.config_schema`) and the comment that
explains it, so the page can never drift from what `ttt train` accepts.

    python -m ttt_train.reference docs/config-reference.md     # rewrite the page
    python -m ttt_train.reference --check docs/config-reference.md
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttt_train.config import CONFIG_DIR, GROUPS, config_schema

_ENTRY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]\w*):(?P<value>[^#]*?)\s*"
                    r"(#\s?(?P<note>.*))?$")

HEADER = """# Config reference

Every key `ttt train` accepts, by group, with its default, its type and what it means:
generated from the base files under `configs/` by `python -m ttt_train.reference
docs/config-reference.md` (a test checks that this page is current). Keys marked (ours)
extend the official TTT-E2E keys; every other key keeps the official meaning. Set any of
them on the command line as `group.key=value`, or in an experiment file.
"""


@dataclass(frozen=True)
class Entry:
    dotted: str
    default: str
    note: str


def base_entries(group: str) -> list[Entry | str]:
    """The keys of `configs/<group>/base_<group>.yaml` in file order, with a paragraph
    (str) for each block comment between them."""
    out: list[Entry | str] = []
    parents: list[tuple[int, str]] = []
    comment: list[str] = []
    path = CONFIG_DIR / group / f"base_{group}.yaml"
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        m = _ENTRY.match(line)
        if not m:
            continue
        if comment:
            out.append(" ".join(comment))
            comment = []
        indent = len(m["indent"])
        parents = [(i, k) for i, k in parents if i < indent]
        dotted = ".".join([group, *(k for _, k in parents), m["key"]])
        value = m["value"].strip()
        if value:
            out.append(Entry(dotted, value, (m["note"] or "").strip()))
        else:
            parents.append((indent, m["key"]))
    return out


def _type_name(tp: Any) -> str:
    text = getattr(tp, "__name__", None) or str(tp)
    return text.replace("typing.", "").replace("NoneType", "None").replace("|", "or")


def _type_of(dotted: str, schema: dict[str, Any]) -> str:
    """The key's type; for an entry of a free-form mapping (deploy_paths.data.<name>),
    the mapping's."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if (prefix := ".".join(parts[:n])) in schema:
            shown = _type_name(schema[prefix])
            return shown if n == len(parts) else f"entry of `{prefix}` ({shown})"
    raise KeyError(f"{dotted} is in a base file but not in the schema")


def reference_markdown() -> str:
    schema = config_schema()
    lines = [HEADER.rstrip()]
    for group in GROUPS:
        lines += ["", f"## `{group}`"]
        table_open = False
        for item in base_entries(group):
            if isinstance(item, str):
                lines += ["", item]
                table_open = False
                continue
            if not table_open:
                lines += ["", "| key | default | type | meaning |", "|---|---|---|---|"]
                table_open = True
            default = item.default.replace("|", "\\|")
            note = item.note.replace("|", "\\|")
            lines.append(f"| `{item.dotted}` | `{default}` | {_type_of(item.dotted, schema)} "
                         f"| {note} |")
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
