import multiprocessing

import numpy as np

from clamp3.cache import FeatureCache, digest, sampled_file_digest


def _writer(root: str, seed: int) -> None:
    cache = FeatureCache(root)
    for i in range(200):
        cache.put_array(f"{i:064x}", np.full((50, 8), i, dtype=np.float32))
        cache.put_text(f"{i + 1000:064x}", f"text {i}" * (seed + 1))


def test_two_processes_writing_the_same_entries_leave_every_entry_whole(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), seed)) for seed in (0, 1)]
    for worker in workers:
        worker.start()
    reader = FeatureCache(tmp_path)
    seen = 0
    while any(worker.is_alive() for worker in workers):
        array = reader.get_array(f"{199:064x}")
        if array is not None:
            assert array.shape == (50, 8) and (array == 199).all()  # never a partial file
            seen += 1
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    for i in range(200):
        np.testing.assert_array_equal(reader.get_array(f"{i:064x}"), np.full((50, 8), i, dtype=np.float32))
        assert reader.get_text(f"{i + 1000:064x}") in {f"text {i}", f"text {i}" * 2}
    assert not list(tmp_path.rglob("*.tmp"))
    assert reader.stats().entries == 400
    assert reader.clear() == 400 and reader.stats().entries == 0


def test_keys_and_digests(tmp_path):
    assert digest("ab", "c") != digest("a", "bc")
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    first = sampled_file_digest(path)
    path.write_bytes(b"x" * 1_500_000 + b"y" + b"x" * 1_499_999)
    assert sampled_file_digest(path) == first  # only the ends are sampled
    path.write_bytes(b"x" * 3_000_001)
    assert sampled_file_digest(path) != first  # the size is part of it


def test_damaged_entries_are_misses(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_array("ab" + "0" * 62, np.ones(3, dtype=np.float32))
    (tmp_path / "ab" / ("ab" + "0" * 62 + ".npy")).write_bytes(b"garbage")
    assert cache.get_array("ab" + "0" * 62) is None
    assert cache.get_text("cd" + "0" * 62) is None


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from clamp3.fileio import atomic_write

    atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~mask
