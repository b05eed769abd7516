"""Must-show 1: a zarr v3 store in the authors' layout (flat uint32 array at
<root>/<split>, blosc zstd), written here with zarr-python as the authors' tooling does,
yields the expected windows; and our stores open with the authors' own reader call."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, BloscShuffle

from ttt_data.pipeline import PipelineConfig, batches
from ttt_data.summary import summarize_store
from ttt_data.windows import TokenWindows

SEQ = 128
BOS = 7


@pytest.fixture(scope="module")
def authors_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("authors") / "llama3-dclm-like"
    rng = np.random.default_rng(0)
    data = {"train": rng.integers(10, 50_000, 10_000, dtype=np.uint32),
            "val": rng.integers(10, 50_000, 3_000, dtype=np.uint32)}
    data["train"][[0, 1000, 4321, 9000]] = BOS  # document starts
    store = zarr.storage.LocalStore(str(root))
    codec = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle)
    for split, values in data.items():
        arr = zarr.create_array(store, name=split, shape=values.shape, chunks=(1000,),
                                dtype="uint32", compressors=codec)
        arr[:] = values
    return root, data


def test_windows_of_an_authors_store(authors_store):
    root, data = authors_store
    train = data["train"]
    src = TokenWindows(root, "train", SEQ)
    assert len(src) == (train.size - 1) // SEQ
    for i in (0, 1, 7, len(src) - 1):
        np.testing.assert_array_equal(src[i], train[i * SEQ: i * SEQ + SEQ + 1].astype(np.int32))


def test_pipeline_in_order_over_an_authors_store(authors_store):
    root, data = authors_store
    cfg = PipelineConfig(str(root), seq_len=SEQ, global_batch_size=4, shuffle=False,
                         num_epochs=1, bos_id=BOS, split="val")
    got = np.concatenate([b["tokens"] for b in batches(cfg)])
    val = data["val"]
    n = (val.size - 1) // SEQ // 4 * 4  # whole batches only
    want = np.stack([val[i * SEQ: i * SEQ + SEQ + 1] for i in range(n)]).astype(np.int32)
    np.testing.assert_array_equal(got, want)


def test_document_aligned_windows_found_by_bos_in_a_store_without_index(authors_store):
    root, data = authors_store
    cfg = PipelineConfig(str(root), seq_len=SEQ, global_batch_size=1, shuffle=False,
                         num_epochs=1, bos_id=BOS, document_aligned=True)
    got = [b["tokens"][0] for b in batches(cfg)]
    # BOS at 0, 1000, 4321, 9000: all have room for a window of SEQ + 1 tokens.
    assert [int(w[0]) for w in got] == [BOS] * 4
    for w, start in zip(got, (0, 1000, 4321, 9000), strict=True):
        np.testing.assert_array_equal(w, data["train"][start:start + SEQ + 1].astype(np.int32))


def test_summary_of_a_store_without_manifest(authors_store):
    root, data = authors_store
    s = summarize_store(root, sample_tokens=5)
    assert s.manifest is None
    assert s.split_tokens == {"train": 10_000, "val": 3_000}
    assert list(s.sample_ids) == data["train"][:5].tolist()


def test_our_store_opens_with_the_authors_reader(store):
    # The authors' loader: zarr.open_array(LocalStore(path), path=f"/{split}"), then
    # window idx is split[idx * seq_len:(idx + 1) * seq_len + 1].
    z = zarr.open_array(zarr.storage.LocalStore(str(store), read_only=True), path="/train")
    src = TokenWindows(store, "train", 32)
    assert z.shape == (src.num_tokens,)
    for idx in range(len(src)):
        np.testing.assert_array_equal(np.asarray(z[idx * 32:(idx + 1) * 32 + 1]), src[idx])
