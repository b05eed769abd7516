from pathlib import Path

import pytest
from ttt_app_testlib import make_store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = make_store(tmp_path_factory.mktemp("data"))
    return path


@pytest.fixture(scope="session")
def tokenizer(store: Path) -> Path:
    return store.parent / "tokenizer"
