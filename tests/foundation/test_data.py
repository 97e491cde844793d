import gzip

import numpy as np
import pytest
import torch

from netpress.data import DataHparams, TensorData, batches, load_data, read_idx, write_idx
from netpress.errors import ConfigError, DataError


def _fake_idx_folder(folder, n_train=300, n_test=50, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 255, (n_train, 28, 28)))
    write_idx(folder / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train))
    write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 255, (n_test, 28, 28)))
    write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("x.idx.gz" if gz else "x.idx")
    write_idx(p, a)
    np.testing.assert_array_equal(read_idx(p), a)


def test_idx_truncated_names_file(tmp_path):
    p = tmp_path / "imgs"
    write_idx(p, np.zeros((4, 5, 5), np.uint8))
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"imgs.*truncated"):
        read_idx(p)


def test_idx_bad_magic_and_gzip(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)
    g = tmp_path / "junk.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="junk.gz"):
        read_idx(g)
    h = tmp_path / "short.gz"
    h.write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00\x00"))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(h)


def test_fashion_mnist_from_folder_with_validation_split(tmp_path):
    _fake_idx_folder(tmp_path)
    d = load_data(DataHparams("fashion-mnist", val_size=100), data_dir=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (200, 100, 50)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    again = load_data(DataHparams("fashion-mnist", val_size=100), data_dir=tmp_path)
    assert torch.equal(d.val.x, again.val.x)  # fixed-seed split
    assert d.train.x.dtype == torch.float32


def test_env_var_data_dir(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    _fake_idx_folder(tmp_path / "fashion-mnist", gz=False)
    monkeypatch.setenv("NETPRESS_DATA", str(tmp_path))
    assert len(load_data(DataHparams("fashion-mnist", val_size=10)).test) == 50


def test_missing_data_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("NETPRESS_DATA", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match=r"mnist data not found; looked in: .*nothing.*NETPRESS_DATA"):
        load_data("mnist")


def test_given_data_dir_is_the_only_place_looked(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    _fake_idx_folder(tmp_path / "elsewhere", gz=False)
    monkeypatch.setenv("NETPRESS_DATA", str(tmp_path / "elsewhere"))  # would be found by a fallback
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"fashion-mnist data not found; looked in: .*empty, .*empty/fashion-mnist\. "):
        load_data("fashion-mnist", data_dir=tmp_path / "empty")
    with pytest.raises(DataError, match=r"data folder .*missing' does not exist"):
        load_data("synthetic", data_dir=tmp_path / "missing")  # even where the dataset needs no files


def test_malformed_idx_shapes(tmp_path):
    _fake_idx_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="expected N x H x W images and N labels"):
        load_data(DataHparams("fashion-mnist", val_size=10), data_dir=tmp_path)


def test_unknown_dataset_lists_names():
    with pytest.raises(ConfigError, match="known: digits, fashion-mnist, mnist, synthetic"):
        DataHparams("cifar-1000")


def test_digits_and_synthetic():
    d = load_data("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and len(d.val) == 300
    s = load_data("synthetic")
    assert s.num_classes == 4 and len(s.train) == 1000


def test_batches_cover_in_order_and_resume():
    data = TensorData(torch.arange(10).float().view(10, 1), torch.zeros(10))
    order = torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    got = [b.index.tolist() for b in batches(data, 4, order)]
    assert got == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]
    assert [b.index.tolist() for b in batches(data, 4, order, start=2)] == [[1, 0]]


def test_user_dataset_batches():
    class Squares(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.tensor([float(i * i)]), i % 2

    out = list(batches(Squares(), 2, torch.tensor([4, 3, 2, 1, 0])))
    assert out[0].x.flatten().tolist() == [16.0, 9.0] and out[0].index.tolist() == [4, 3]
    assert out[-1].y.tolist() == [0]


def test_val_size_too_large_is_a_config_error():
    with pytest.raises(ConfigError, match="leaves no training data"):
        load_data(DataHparams("synthetic", val_size=5000))


def test_empty_training_set_is_a_data_error():
    from netpress.data import DataSplits
    from netpress.models import build_model
    from netpress.train import TrainingHparams, train

    s = load_data("synthetic")
    empty = DataSplits(s.train.subset(torch.arange(0)), None, s.test, 4, s.input_shape)
    with pytest.raises(DataError, match="training set is empty"):
        train(build_model("lenet300", s.input_shape, 4), empty, TrainingHparams(steps="1ep"), device="cpu")


def test_gzip_bomb_is_never_decompressed_past_its_header(tmp_path, monkeypatch):
    """A header for 10 x 28 x 28 bytes followed by 32 MB of zeros: at most header + body + 1 bytes are inflated."""
    import gzip

    import netpress.data.idx as idx

    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28)))
        fh.write(bytes(32 << 20))
    inflated = []

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            inflated.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(idx.gzip, "open", lambda p, mode: Counting(gzip.GzipFile(p, mode)))
    with pytest.raises(DataError, match=r"IDX body has more than 7840 bytes, header shape \(10, 28, 28\)"):
        read_idx(path)
    assert sum(inflated) == 16 + 7840 + 1


def test_idx_header_claiming_more_than_the_gzip_can_hold(tmp_path):
    import gzip

    path = tmp_path / "lie-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (60000, 28, 28))))
    with pytest.raises(DataError, match="more than a .*-byte gzip file can hold"):
        read_idx(path)
    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (60000, 28000, 28)))
    with pytest.raises(DataError, match="over the 1,073,741,824-byte limit"):
        read_idx(huge)
