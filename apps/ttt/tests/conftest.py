from ttt_app_testlib import store, tokenizer  # noqa: F401  (session fixtures)
