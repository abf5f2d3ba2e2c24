"""Writes that share a target (two runs in one run directory) never collide on a temporary name."""

from concurrent.futures import ThreadPoolExecutor

from coreset_lab.files import atomic_write_bytes


def test_concurrent_writers_of_one_file_each_finish_and_leave_no_temporary(tmp_path):
    target = tmp_path / "coreset.csv"
    texts = [f"writer {w}\n".encode() * 2000 for w in range(4)]

    def write(text: bytes) -> None:
        for _ in range(50):
            atomic_write_bytes(target, text)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, texts))  # a shared .tmp name raised FileNotFoundError here
    assert target.read_bytes() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["coreset.csv"]
