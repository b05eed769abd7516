"""The small-scale study: does TTT-E2E, as built here, recover information beyond its
attention window? FA, SWA and TTT-E2E trained on the same tokens (a synthetic long-range
corpus and this Python's standard library), measured through ttt-eval over several seeds,
plus the warm-start ladder; `python -m ttt_train.study` (or `nox -s study`) writes the
results page. Settings live in `plan`; nothing else holds a number."""
