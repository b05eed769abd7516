"""ttt-eval: what a long-context model is for, measured — scoring, generation, context
sweeps, RULER retrieval, decode trend and efficiency, for FA, SWA and TTT-E2E checkpoints.

Imports ttt-model and ttt-data only.
"""
