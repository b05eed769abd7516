"""Moved: scoring lives in the ttt-eval package (`ttt_eval.score`), the one home of
per-token NLL for every caller. Importing this module says so instead of failing later."""

raise ImportError("ttt_import.score moved to ttt_eval.score (package ttt-eval): "
                  "score_checkpoint, score_tokens, load_tokens, tokenize_text and ScoreError "
                  "are there now; the `ttt eval score` command is unchanged")
