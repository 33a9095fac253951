"""Tests of bench.data: the real Fashion-MNIST files, the splits, preprocessing, and damaged files.

Damaged inputs are real files built in ``tmp_path`` from the installed data set: symlinks to the
good files plus one truncated, recompressed, altered or decompressed file.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from bench import data
from bench.errors import DatasetError
from bench.tiers import FULL, SMOKE

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
# One hash over the four files' hashes: caches and baselines are keyed by it, so it must not move.
DATASET_SHA256 = "d1fd84a877f3b78fa9a171b3de73f93e7b6f69ed94bada3feae9d96821401f5c"


def assert_says_how_to_get(message: str) -> None:
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert "FASHION_MNIST_DIR" in message


# ---------------------------------------------------------------------------------------------
# Helpers: folders of real and damaged files


@pytest.fixture(scope="module")
def real_dir() -> Path:
    """The installed data set's folder (raises DatasetError, saying how to install it, if absent)."""
    return data.find_dataset_dir(allow_download=False)


@pytest.fixture(scope="module")
def real() -> data.FashionMNIST:
    return data.load(allow_download=False)


def real_file(real_dir: Path, name: str) -> Path:
    path = data._file_in(real_dir, name)
    assert path is not None, f"{real_dir} lacks {name}"
    return path


def real_bytes(real_dir: Path, name: str) -> bytes:
    """The decompressed bytes of one real file."""
    raw = real_file(real_dir, name).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def build_dir(folder: Path, real_dir: Path, replace: dict[str, tuple[str, bytes]] | None = None,
              omit: tuple[str, ...] = ()) -> Path:
    """A data set folder: links to the real files, except ``omit`` and ``replace``d ones.

    Args:
        replace: name -> (file name to write, its bytes), e.g. a truncated ``.gz`` or a plain file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    for name in data.SHA256:
        if name in omit:
            continue
        if name in replace:
            file_name, payload = replace[name]
            (folder / file_name).write_bytes(payload)
        else:
            source = real_file(real_dir, name)
            (folder / source.name).symlink_to(source)
    return folder


def truncated_gz(real_dir: Path, name: str) -> bytes:
    """The real gzip file of ``name``, cut in half (re-gzipped first if the installed one is plain)."""
    raw = real_file(real_dir, name).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        raw = gzip.compress(raw)
    return raw[: len(raw) // 2]


def idx_bytes(magic: int, shape: tuple[int, ...], body: bytes | None = None) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape)
    return header + (bytes(int(np.prod(shape))) if body is None else body)


@pytest.fixture
def fresh_load(monkeypatch):
    """Clears data.load's memo before and after, and unsets $FASHION_MNIST_DIR for the test."""
    monkeypatch.delenv(data.ENV_DIR, raising=False)
    data.load.cache_clear()
    yield
    data.load.cache_clear()


@pytest.fixture
def no_other_dirs(monkeypatch, tmp_path):
    """Points the Debian and Keras folders at empty places, so only $FASHION_MNIST_DIR counts."""
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(data, "KERAS_CACHE_DIR", tmp_path / "no-keras")


# ---------------------------------------------------------------------------------------------
# The real data set


def test_real_dataset_shapes_dtypes_labels(real):
    assert real.x_train.shape == (60000, 28, 28) and real.x_train.dtype == np.uint8
    assert real.x_test.shape == (10000, 28, 28) and real.x_test.dtype == np.uint8
    assert real.y_train.shape == (60000,) and real.y_train.dtype == np.int64
    assert real.y_test.shape == (10000,) and real.y_test.dtype == np.int64
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    assert np.bincount(real.y_train, minlength=11).tolist() == [6000] * 10 + [0]
    assert np.bincount(real.y_test, minlength=11).tolist() == [1000] * 10 + [0]
    assert real.x_train.max() == 255 and real.x_train.min() == 0
    assert len(data.CLASS_NAMES) == data.NUM_CLASSES == 10


def test_real_dataset_hash_is_stable(real, real_dir):
    assert real.sha256 == DATASET_SHA256
    assert data.load_from(real_dir).sha256 == DATASET_SHA256
    assert Path(real.source).is_dir()


def test_each_real_file_matches_its_published_sha256(real_dir):
    for name, digest in data.SHA256.items():
        assert hashlib.sha256(real_bytes(real_dir, name)).hexdigest() == digest, name


# ---------------------------------------------------------------------------------------------
# split()


def indexed_dataset(n_train: int = 600, n_test: int = 100) -> data.FashionMNIST:
    """A synthetic data set whose every image encodes its own index in its first two pixels."""

    def images(n: int) -> np.ndarray:
        x = np.zeros((n, 28, 28), np.uint8)
        idx = np.arange(n)
        x[:, 0, 0], x[:, 0, 1] = idx // 256, idx % 256
        return x

    return data.FashionMNIST(
        x_train=images(n_train), y_train=np.arange(n_train) % 10,
        x_test=images(n_test), y_test=np.arange(n_test) % 10, sha256="x", source="synthetic",
    )


def indices(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0].astype(np.int64) * 256 + x[:, 0, 1]


def small_split(ds, **overrides) -> data.Splits:
    kwargs = dict(val_size=100, train_size=300, test_size=40, calibration_size=50, seed=7)
    kwargs.update(overrides)
    return data.split(ds, **kwargs)


def test_split_is_deterministic_and_seeded():
    ds = indexed_dataset()
    a, b = small_split(ds), small_split(ds)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_calib"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    c = small_split(ds, seed=8)
    assert not np.array_equal(indices(a.x_train), indices(c.x_train))


def test_split_sizes_and_disjoint_train_val():
    ds = indexed_dataset()
    s = small_split(ds)
    train, val = indices(s.x_train), indices(s.x_val)
    assert len(train) == 300 and len(val) == 100 and len(s.x_test) == 40 and len(s.x_calib) == 50
    assert len(set(train)) == 300 and len(set(val)) == 100
    assert not set(train) & set(val)
    # Labels travel with their images.
    np.testing.assert_array_equal(s.y_train, train % 10)
    np.testing.assert_array_equal(s.y_val, val % 10)
    np.testing.assert_array_equal(s.y_test, indices(s.x_test) % 10)


def test_split_all_remaining_training_images_when_train_size_is_none():
    s = small_split(indexed_dataset(), train_size=None, test_size=None)
    assert len(s.x_train) == 500 and len(s.x_test) == 100
    assert set(indices(s.x_train)) | set(indices(s.x_val)) == set(range(600))
    np.testing.assert_array_equal(indices(s.x_test), np.arange(100))


def test_calibration_images_come_from_the_training_split():
    s = small_split(indexed_dataset())
    calib = indices(s.x_calib)
    np.testing.assert_array_equal(calib, indices(s.x_train)[:50])
    assert not set(calib) & set(indices(s.x_val))


def test_smaller_tier_is_a_prefix_and_validation_does_not_move():
    ds = indexed_dataset()
    small, large = small_split(ds, train_size=100, test_size=20), small_split(ds, train_size=400)
    np.testing.assert_array_equal(indices(small.x_train), indices(large.x_train)[:100])
    np.testing.assert_array_equal(indices(small.x_val), indices(large.x_val))
    assert set(indices(small.x_test)) <= set(indices(large.x_test))
    assert np.all(np.diff(indices(large.x_test)) > 0)  # test subset kept in file order


@pytest.mark.parametrize("tier", [SMOKE, FULL], ids=lambda t: t.name)
def test_split_of_the_real_data_per_tier(real, tier):
    train_size = tier.train_recipe("cnn").train_size
    s = data.split(real, val_size=tier.val_size, train_size=train_size, test_size=tier.test_size,
                   calibration_size=tier.calibration_size, seed=tier.seed)
    assert len(s.x_val) == tier.val_size
    assert len(s.x_train) == (train_size or 60000 - tier.val_size)
    assert len(s.x_test) == (tier.test_size or 10000)
    assert len(s.x_calib) == tier.calibration_size
    assert s.x_train.dtype == np.uint8 and s.x_train.shape[1:] == (28, 28)
    # Every class is represented in each split of a seeded permutation.
    for labels in (s.y_train, s.y_val, s.y_test):
        assert set(np.unique(labels)) == set(range(10))


# ---------------------------------------------------------------------------------------------
# to_model_input()


def sample_images() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 255, 0
    return x


def test_model_input_28x28x1():
    images = sample_images()
    x = data.to_model_input(images, (28, 28, 1))
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, 0, 0, 0] == 1.0 and x[0, 0, 1, 0] == 0.0
    np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=1e-6)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_model_input_32x32x3_pads_two_pixels_and_repeats_the_channel():
    images = sample_images()
    x = data.to_model_input(images, (32, 32, 3))
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[:, 2:30, 2:30, 0], images / 255.0, rtol=1e-6)
    for channel in (1, 2):
        np.testing.assert_array_equal(x[..., channel], x[..., 0])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, border, :] == 0.0)
    assert x[0, 2, 2, 1] == 1.0  # pixel (0, 0) lands at (2, 2)


@pytest.mark.parametrize("shape", [(31, 31, 1), (26, 26, 1), (29, 28, 1)])
def test_model_input_rejects_shapes_it_cannot_pad_to(shape):
    with pytest.raises(ValueError, match="cannot pad 28x28"):
        data.to_model_input(sample_images(), shape)


# ---------------------------------------------------------------------------------------------
# Missing folders and files


def test_env_folder_lacking_files_names_them(tmp_path, real_dir, fresh_load, no_other_dirs, monkeypatch):
    folder = build_dir(tmp_path / "partial", real_dir, omit=(TEST_IMAGES, TEST_LABELS))
    monkeypatch.setenv(data.ENV_DIR, str(folder))
    for allow_download in (False, True):  # an explicit, incomplete folder never triggers a download
        with pytest.raises(DatasetError) as info:
            data.load(allow_download=allow_download)
        message = str(info.value)
        assert str(folder) in message and TEST_IMAGES in message and TEST_LABELS in message
        assert TRAIN_IMAGES not in message
        assert_says_how_to_get(message)


def test_no_folder_and_no_download_lists_where_it_looked(fresh_load, no_other_dirs):
    with pytest.raises(DatasetError) as info:
        data.load(allow_download=False)
    message = str(info.value)
    assert str(data.DEBIAN_DIR) in message and str(data.KERAS_CACHE_DIR) in message
    assert_says_how_to_get(message)


def test_env_folder_is_used_when_complete(tmp_path, real_dir, fresh_load, monkeypatch):
    folder = build_dir(tmp_path / "copy", real_dir)
    monkeypatch.setenv(data.ENV_DIR, str(folder))
    assert data.find_dataset_dir(allow_download=False) == folder


def test_load_from_folder_lacking_a_file(tmp_path, real_dir):
    folder = build_dir(tmp_path / "partial", real_dir, omit=(TRAIN_IMAGES,))
    with pytest.raises(DatasetError) as info:
        data.load_from(folder)
    assert str(folder) in str(info.value) and TRAIN_IMAGES in str(info.value)
    assert_says_how_to_get(str(info.value))


# ---------------------------------------------------------------------------------------------
# Damaged files


def test_truncated_gzip_is_reported_with_its_path(tmp_path, real_dir):
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(truncated_gz(real_dir, TEST_LABELS))
    with pytest.raises(DatasetError) as info:
        data.read_verified(path, TEST_LABELS)
    message = str(info.value)
    assert str(path) in message and "truncated" in message
    assert_says_how_to_get(message)


def test_truncated_gzip_in_a_folder_fails_the_load(tmp_path, real_dir):
    damaged = truncated_gz(real_dir, TEST_LABELS)
    folder = build_dir(tmp_path / "d", real_dir, replace={TEST_LABELS: (f"{TEST_LABELS}.gz", damaged)})
    with pytest.raises(DatasetError) as info:
        data.load_from(folder)
    assert str(folder / f"{TEST_LABELS}.gz") in str(info.value)
    assert_says_how_to_get(str(info.value))


def test_not_gzip_at_all_is_reported(tmp_path):
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DatasetError, match="not a complete gzip file") as info:
        data.read_verified(path, TEST_LABELS)
    assert str(path) in str(info.value)


def test_wrong_checksum_of_a_valid_gzip(tmp_path, real_dir):
    raw = bytearray(real_bytes(real_dir, TEST_LABELS))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: still a well-formed IDX file
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError) as info:
        data.read_verified(path, TEST_LABELS)
    message = str(info.value)
    assert str(path) in message and data.SHA256[TEST_LABELS] in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    assert_says_how_to_get(message)


def test_recompressed_gzip_is_accepted(tmp_path, real_dir):
    """The hash is of the decompressed bytes: a mirror's different gzip bytes are fine."""
    raw = real_bytes(real_dir, TEST_LABELS)
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))
    assert path.read_bytes() != real_file(real_dir, TEST_LABELS).read_bytes()
    assert data.read_verified(path, TEST_LABELS) == raw


def test_plain_files_are_accepted(tmp_path, real, real_dir):
    plain = {name: (name, real_bytes(real_dir, name)) for name in (TEST_IMAGES, TEST_LABELS)}
    folder = build_dir(tmp_path / "plain", real_dir, replace=plain)
    assert data._file_in(folder, TEST_LABELS) == folder / TEST_LABELS
    loaded = data.load_from(folder)
    np.testing.assert_array_equal(loaded.x_test, real.x_test)
    np.testing.assert_array_equal(loaded.y_test, real.y_test)
    assert loaded.sha256 == DATASET_SHA256 and loaded.source == str(folder)


# ---------------------------------------------------------------------------------------------
# parse_idx on crafted bytes


def test_parse_idx_accepts_the_expected_header():
    labels = bytes(range(10)) * 1000
    array = data.parse_idx(idx_bytes(0x801, (10000,), labels), TEST_LABELS)
    assert array.shape == (10000,) and array.dtype == np.uint8 and array[:10].tolist() == list(range(10))


def test_parse_idx_wrong_magic(tmp_path):
    with pytest.raises(DatasetError) as info:
        data.parse_idx(idx_bytes(0x803, (10000, 1, 1)), TEST_LABELS, "some/origin")
    message = str(info.value)
    assert "some/origin" in message and "0x00000803" in message and "0x00000801" in message
    assert_says_how_to_get(message)


def test_parse_idx_wrong_shape():
    with pytest.raises(DatasetError) as info:
        data.parse_idx(idx_bytes(0x803, (10000, 28, 27)), TEST_IMAGES)
    message = str(info.value)
    assert TEST_IMAGES in message and "(10000, 28, 27)" in message and "(10000, 28, 28)" in message
    assert_says_how_to_get(message)


def test_parse_idx_short_body():
    raw = idx_bytes(0x801, (10000,), bytes(9999))
    with pytest.raises(DatasetError, match="9999 data bytes .* truncated"):
        data.parse_idx(raw, TEST_LABELS)


@pytest.mark.parametrize("raw", [b"", b"\x00\x00\x08", b"\x00\x00\x08\x03\x00\x00\x27\x10",
                                 b"\x00\x00\x08\x03\x00\x00\xea\x60\x00\x00\x00"])
def test_parse_idx_header_cut_short(raw):
    """A header shorter than its own dimension count declares is a DatasetError, not struct.error."""
    with pytest.raises(DatasetError) as info:
        data.parse_idx(raw, TRAIN_IMAGES, "cut.idx")
    assert "cut.idx" in str(info.value)
    assert_says_how_to_get(str(info.value))


def test_helpers_copy_real_files(tmp_path, real_dir):
    """The helper folder is a faithful copy: everything else above fails for the damaged file only."""
    folder = build_dir(tmp_path / "copy", real_dir)
    assert data._complete_dir(folder)
    source = real_file(real_dir, TEST_LABELS)
    copied = tmp_path / f"copied{source.suffix}"
    shutil.copyfile(source, copied)
    assert data.read_verified(copied, TEST_LABELS) == real_bytes(real_dir, TEST_LABELS)
