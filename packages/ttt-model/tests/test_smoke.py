def test_import():
    import ttt_model  # noqa: F401
