"""One module per subcommand; each defines `register(subparsers)`.

A module registers its parser and sets `func` (args -> exit code) on it. A group of
subcommands (`data`, `eval`) is a subpackage whose `__init__` registers the group and
hands each subcommand to its own module. Commands parse, call package code, and print:
no logic of their own.
"""
