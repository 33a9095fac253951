"""Fashion-MNIST: find the real IDX files, verify them, load them, split them per tier.

Where the files are looked for, in order:

1. ``$FASHION_MNIST_DIR``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install -y dataset-fashion-mnist``);
3. the Keras cache, ``~/.keras/datasets/fashion-mnist``;
4. a download through Keras into that cache, where the network allows it.

Each file may be gzipped or plain. The sha256 of the *decompressed* bytes is checked, because
mirrors recompress the files and their gzip bytes differ.

Preprocessing (see :func:`to_model_input`): pixels become float32 in [0, 1]. Models whose input
is 32x32x3 (MobileNet, VGG16: Keras' smallest input for both) get the 28x28 image zero-padded by 2
pixels on every side and the grey channel repeated three times, as the reference report did.
:class:`ModelInputs` holds a tier's images converted once per input shape.

Splits: a validation set is carved from the 60k training images with a fixed seed; the test set is
only ever used for the final accuracy, never for training, early stopping or calibration.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bench.errors import DatasetError

ENV_DIR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_DIR = Path.home() / ".keras" / "datasets" / "fashion-mnist"
HOW_TO_GET = (
    "get the data with `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu, as root), "
    f"or put the four IDX files (gzipped or not) in a folder and set ${ENV_DIR} to it"
)

# sha256 of the decompressed files, as published with the data set.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# (IDX magic number, shape) each file must declare.
EXPECTED_HEADER = {
    "train-images-idx3-ubyte": (0x00000803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (0x00000801, (60000,)),
    "t10k-images-idx3-ubyte": (0x00000803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (0x00000801, (10000,)),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class FashionMNIST:
    """The four arrays of the data set, as uint8 images and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: str  # one hash over the four files' hashes: keys caches and baselines
    source: str  # the folder the files came from


@dataclasses.dataclass(frozen=True)
class Splits:
    """A tier's view of the data: uint8 images, int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray  # drawn from the training split only


def _candidate_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    dirs += [DEBIAN_DIR, KERAS_CACHE_DIR]
    return dirs


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _complete_dir(folder: Path) -> bool:
    return all(_file_in(folder, name) for name in SHA256)


def _download_with_keras() -> Path:
    """Lets Keras fetch the gzipped files into its cache; returns that folder."""
    import tensorflow as tf

    import bench.tfsetup  # noqa: F401  (configures TensorFlow before import)

    try:
        tf.keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # any network or HTTP failure: the message below says what to do
        raise DatasetError(
            "Fashion-MNIST was not found in "
            + ", ".join(str(d) for d in _candidate_dirs())
            + f" and downloading it through Keras failed ({type(exc).__name__}: {exc}); "
            + HOW_TO_GET
        ) from None
    return KERAS_CACHE_DIR


def find_dataset_dir(allow_download: bool = True) -> Path:
    """Returns the first folder holding all four files.

    Args:
        allow_download: Whether to fall back on a Keras download.

    Raises:
        DatasetError: No folder holds the files and no download was possible.
    """
    if os.environ.get(ENV_DIR):
        # An explicit folder is the user's choice: use it or say what it lacks, never fall back.
        folder = Path(os.environ[ENV_DIR])
        missing = [n for n in SHA256 if _file_in(folder, n) is None]
        if not missing:
            return folder
        raise DatasetError(
            f"${ENV_DIR}={folder} lacks {', '.join(missing)} (as .gz or plain); {HOW_TO_GET}"
        )
    for folder in _candidate_dirs():
        if _complete_dir(folder):
            return folder
    if not allow_download:
        raise DatasetError(
            "Fashion-MNIST was not found in "
            + ", ".join(str(d) for d in _candidate_dirs())
            + f"; {HOW_TO_GET}"
        )
    return _download_with_keras()


def read_verified(path: Path, name: str) -> bytes:
    """Reads one file, decompressing if gzipped, and checks its sha256.

    Raises:
        DatasetError: The file is truncated, not gzip, or not the expected bytes.
    """
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(
                f"{path} is not a complete gzip file ({exc}); it is probably truncated: "
                f"delete it and fetch it again; {HOW_TO_GET}"
            ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[name]:
        raise DatasetError(
            f"{path}: sha256 of the decompressed bytes is {digest}, expected {SHA256[name]} "
            f"({len(raw)} bytes read); the file is damaged or not Fashion-MNIST; {HOW_TO_GET}"
        )
    return raw


def parse_idx(raw: bytes, name: str, origin: str = "") -> np.ndarray:
    """Parses IDX bytes (unsigned byte data) and checks magic number and shape.

    Raises:
        DatasetError: The header is not the one this file must have.
    """
    where = origin or name
    want_magic, want_shape = EXPECTED_HEADER[name]
    if len(raw) < 8:
        raise DatasetError(f"{where}: {len(raw)} bytes is too short for an IDX header; {HOW_TO_GET}")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != want_magic:
        raise DatasetError(
            f"{where}: IDX magic number is 0x{magic:08x}, expected 0x{want_magic:08x} "
            f"(an unsigned-byte array of {len(want_shape)} dimensions); {HOW_TO_GET}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{where}: {len(raw)} bytes is too short for an IDX header; {HOW_TO_GET}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if tuple(shape) != want_shape:
        raise DatasetError(f"{where}: IDX shape is {shape}, expected {want_shape}; {HOW_TO_GET}")
    body = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise DatasetError(
            f"{where}: {body.size} data bytes for shape {shape}; the file is truncated; {HOW_TO_GET}"
        )
    return body.reshape(shape)


def load_from(folder: Path) -> FashionMNIST:
    """Loads and verifies the four files from one folder."""
    arrays, hashes = {}, []
    for name in SHA256:
        path = _file_in(folder, name)
        if path is None:
            raise DatasetError(f"{folder} lacks {name} (as .gz or plain); {HOW_TO_GET}")
        arrays[name] = parse_idx(read_verified(path, name), name, str(path))
        hashes.append(SHA256[name])
    return FashionMNIST(
        x_train=arrays["train-images-idx3-ubyte"],
        y_train=arrays["train-labels-idx1-ubyte"].astype(np.int64),
        x_test=arrays["t10k-images-idx3-ubyte"],
        y_test=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
        sha256=hashlib.sha256("".join(hashes).encode()).hexdigest(),
        source=str(folder),
    )


@functools.lru_cache(maxsize=1)
def load(allow_download: bool = True) -> FashionMNIST:
    """Finds, verifies and loads Fashion-MNIST (memoized per process)."""
    return load_from(find_dataset_dir(allow_download))


def split(
    data: FashionMNIST,
    *,
    val_size: int,
    train_size: int | None,
    test_size: int | None,
    calibration_size: int,
    seed: int,
) -> Splits:
    """Carves a tier's splits out of the data set, deterministically.

    The validation images are the last ``val_size`` of a seeded permutation of the 60k training
    images; the training images are taken from the front of the rest, so that a smaller tier's
    training set is a prefix of a larger one's. Calibration images are the first training images.
    The test subset is a seeded permutation prefix of the 10k test images.

    Args:
        data: The loaded data set.
        val_size: Validation images held out of training.
        train_size: Training images (``None``: all that remain after validation).
        test_size: Test images (``None``: all 10,000).
        calibration_size: Training images used for int8 calibration.
        seed: Seed of the permutations.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.x_train))
    val_idx = order[len(order) - val_size:]
    pool = order[: len(order) - val_size]
    train_idx = pool if train_size is None else pool[:train_size]
    test_order = np.random.default_rng(seed + 1).permutation(len(data.x_test))
    test_idx = np.sort(test_order if test_size is None else test_order[:test_size])
    return Splits(
        x_train=data.x_train[train_idx],
        y_train=data.y_train[train_idx],
        x_val=data.x_train[val_idx],
        y_val=data.y_train[val_idx],
        x_test=data.x_test[test_idx],
        y_test=data.y_test[test_idx],
        x_calib=data.x_train[train_idx[:calibration_size]],
    )


def to_model_input(images: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Turns uint8 28x28 images into a model's float32 input.

    Args:
        images: ``(n, 28, 28)`` uint8.
        input_shape: The model's ``(height, width, channels)``: ``(28, 28, 1)`` or ``(32, 32, 3)``.

    Returns:
        ``(n, *input_shape)`` float32 in [0, 1].
    """
    x = images.astype(np.float32) / 255.0
    height, width, channels = input_shape
    pad_h, pad_w = height - x.shape[1], width - x.shape[2]
    if pad_h < 0 or pad_w < 0 or pad_h % 2 or pad_w % 2:
        raise ValueError(f"cannot pad 28x28 images to {height}x{width}")
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h // 2), (pad_w // 2, pad_w // 2)))
    x = x[..., None]
    if channels > 1:
        x = np.repeat(x, channels, axis=-1)
    return np.ascontiguousarray(x)


class ModelInputs:
    """A tier's splits as one model input shape takes them, each array converted once.

    The run's builder makes one per input shape and hands it to training, QAT, conversion
    (calibration) and evaluation alike, so no stage converts the same images again. Each array is
    converted when first asked for. :func:`to_model_input` works image by image, so an epoch's
    shuffled (unaugmented) images taken from :meth:`train` are bit-identical to converting the
    shuffled uint8 images; augmented epochs draw new uint8 images, which :meth:`convert` turns
    into input every epoch.

    Args:
        splits: The tier's splits (uint8 images, labels).
        shape: The model's ``(height, width, channels)``.
    """

    def __init__(self, splits: Splits, shape: tuple[int, int, int]) -> None:
        self.splits = splits
        self.shape = tuple(shape)
        self._train: np.ndarray | None = None

    def convert(self, images: np.ndarray) -> np.ndarray:
        """``images`` (uint8, 28x28) as this shape's model input (:func:`to_model_input`)."""
        return to_model_input(images, self.shape)

    @functools.cached_property
    def x_val(self) -> np.ndarray:
        return self.convert(self.splits.x_val)

    @functools.cached_property
    def x_calib(self) -> np.ndarray:
        return self.convert(self.splits.x_calib)

    @functools.cached_property
    def x_test(self) -> np.ndarray:
        return self.convert(self.splits.x_test)

    def train(self, n: int | None = None) -> np.ndarray:
        """The first ``n`` training images (None: all), converted once: a recipe's training
        images are a prefix of the split's, so a shorter prefix (QAT's) is a view of a longer one."""
        n = len(self.splits.x_train) if n is None else min(n, len(self.splits.x_train))
        if self._train is None or len(self._train) < n:
            self._train = self.convert(self.splits.x_train[:n])
        return self._train[:n]


def main() -> int:
    """``python -m bench.data``: says where the data set is and that it verifies, or what to do."""
    import sys

    try:
        dataset = load(allow_download="--download" in sys.argv)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST verified in {dataset.source} (sha256 {dataset.sha256[:16]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
