"""One module per subcommand group; each defines `register(subparsers)`.

A module registers its parser and sets `func` (args -> exit code) on it. Commands parse,
call package code, and print: no logic of their own.
"""
