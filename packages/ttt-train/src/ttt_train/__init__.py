"""ttt-train: the runner — one training stage end to end (config, data feed, train loop,
checkpoints, interrupts, logs, warm start, held-out eval, ledger record), the staged
pipeline over stages, and the config tree they are composed from. The only package that
composes the others; nothing but the `ttt` app imports it."""
