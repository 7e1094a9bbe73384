"""clgrad.vision: dataset readers on files written here byte by byte, transforms against numpy,
models (ResNet-18 logits against a PyTorch reference when torch is installed), grids and PNGs."""
import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import clgrad
from clgrad import nn
from clgrad.utils.data import DataLoader
from clgrad.vision import datasets, models, transforms as T, utils

MNIST_5K = Path(__file__).resolve().parent.parent / "examples" / "data" / "mnist_5k.npz"


@pytest.fixture
def on(device):
    """Make `device` the default, so ToTensor and friends create their tensors there."""
    before = clgrad.get_default_device()
    clgrad.runtime.set_default_device(device)
    yield device
    clgrad.runtime.set_default_device(before)


# ---- IDX / MNIST --------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format spelled out: two zero bytes, type 0x08 (ubyte), ndim, big-endian dims."""
    assert array.dtype == np.uint8
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + \
        struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder: Path, images, labels, prefix="train", gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte",
                                                                  labels)):
        data = idx_bytes(arr)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def small_digits(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("layout", ["raw", "root"])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files_exactly(tmp_path, layout, gz):
    images, labels = small_digits()
    folder = tmp_path / "MNIST" / "raw" if layout == "raw" else tmp_path
    write_mnist(folder, images, labels, "train", gz)
    write_mnist(folder, images[:3], labels[:3], "t10k", gz)
    ds = datasets.MNIST(str(tmp_path), train=True)
    assert len(ds) == 7
    for i in range(7):
        img, target = ds[i]
        assert isinstance(target, int) and target == labels[i]
        assert img.dtype == np.uint8 and img.shape == (28, 28)
        np.testing.assert_array_equal(img, images[i])
    assert len(datasets.MNIST(tmp_path, train=False)) == 3
    assert ds.class_to_idx["3 - three"] == 3


def test_mnist_data_and_targets_are_tensors(tmp_path, on):
    images, labels = small_digits(5)
    write_mnist(tmp_path / "MNIST" / "raw", images, labels)
    ds = datasets.MNIST(tmp_path)
    assert ds.data.dtype == clgrad.uint8 and tuple(ds.data.shape) == (5, 28, 28)
    assert ds.targets.dtype == clgrad.int64
    np.testing.assert_array_equal(ds.data.numpy(), images)
    np.testing.assert_array_equal(ds.targets.numpy(), labels.astype(np.int64))


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    images, labels = small_digits(4, seed=1)
    write_mnist(tmp_path / "FashionMNIST" / "raw", images, labels, gz=True)
    ds = datasets.FashionMNIST(tmp_path)
    np.testing.assert_array_equal(ds[2][0], images[2])
    assert ds.classes[9] == "Ankle boot"
    with pytest.raises(RuntimeError, match="MNIST/raw"):      # the plain MNIST folder is empty
        datasets.MNIST(tmp_path)


def test_mnist_from_the_bundled_digits(tmp_path, on):
    with np.load(MNIST_5K) as z:
        images, labels = z["images"][::50], z["labels"][::50]     # 100 digits, 10 per class
    write_mnist(tmp_path / "MNIST" / "raw", images, labels)
    ds = datasets.MNIST(tmp_path, transform=T.Compose([T.ToTensor(),
                                                       T.Normalize((0.1307,), (0.3081,))]))
    loader = DataLoader(ds, batch_size=32)
    xb, yb = next(iter(loader))
    assert tuple(xb.shape) == (32, 1, 28, 28) and xb.dtype == clgrad.float32
    want = (images[:32, None].astype(np.float32) / np.float32(255) - np.float32(0.1307)) \
        / np.float32(0.3081)
    np.testing.assert_allclose(xb.numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(yb.numpy(), labels[:32].astype(np.int64))


def test_no_download_and_missing_files_say_where(tmp_path):
    with pytest.raises(RuntimeError, match=r"train-images-idx3-ubyte\[.gz\] not found in "
                       r".*MNIST/raw.*download=True cannot fetch them.*no network"):
        datasets.MNIST(tmp_path, download=True)
    with pytest.raises(RuntimeError, match="train-images-idx3-ubyte.*not found.*no download"):
        datasets.MNIST(tmp_path)
    with pytest.raises(RuntimeError, match="data_batch_1.bin.*not found in .*cifar-10-batches-"
                       "bin.*download=True cannot.*cifar-10-binary.tar.gz"):
        datasets.CIFAR10(tmp_path, download=True)
    with pytest.raises(RuntimeError, match="data_batch_1.bin.*not found"):
        datasets.CIFAR10(tmp_path)
    # as in torchvision, download=True with the files in place just reads them (so scripts
    # written with download=True run unchanged once the files are there)
    images, labels = small_digits(2)
    write_mnist(tmp_path / "MNIST" / "raw", images, labels)
    assert len(datasets.MNIST(tmp_path, download=True)) == 2
    (tmp_path / "test_batch.bin").write_bytes(cifar_records(1, 0)[0])
    assert len(datasets.CIFAR10(tmp_path, train=False, download=True)) == 1


def test_idx_round_trip_and_bad_files(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            datasets.write_idx(tmp_path / name, a)
            b = datasets.read_idx(tmp_path / name)
            assert b.dtype == a.dtype and b.dtype.isnative
            np.testing.assert_array_equal(b, a)
    assert (tmp_path / "a.idx").read_bytes()[:4] == b"\x00\x00\x0e\x03"     # float64, 3 dims
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match="6 bytes.*5 bytes follow"):
        datasets.read_idx(tmp_path / "short")


# ---- CIFAR-10 -----------------------------------------------------------------------------
def cifar_records(n, seed):
    """n records: one label byte, then the red, green and blue 32x32 planes, row-major."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([labels[i]]) + planes[i].tobytes() for i in range(n))
    return raw, labels, planes


def test_cifar10_binary_reader(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    want_labels, want_planes = [], []
    for k in range(1, 6):
        raw, labels, planes = cifar_records(k, seed=k)       # batches of 1..5 records
        (folder / f"data_batch_{k}.bin").write_bytes(raw)
        want_labels += labels.tolist()
        want_planes.append(planes)
    raw, test_labels, test_planes = cifar_records(4, seed=9)
    (folder / "test_batch.bin").write_bytes(raw)
    train = datasets.CIFAR10(tmp_path, train=True)
    assert len(train) == 15 and train.targets == want_labels
    planes = np.concatenate(want_planes)
    assert train.data.shape == (15, 32, 32, 3) and train.data.dtype == np.uint8
    for i in range(15):
        img, target = train[i]
        assert target == want_labels[i]
        np.testing.assert_array_equal(img[:, :, 0], planes[i, 0])     # red plane
        np.testing.assert_array_equal(img[:, :, 2], planes[i, 2])     # blue plane
        np.testing.assert_array_equal(img, planes[i].transpose(1, 2, 0))
    test = datasets.CIFAR10(tmp_path, train=False)
    assert test.targets == test_labels.tolist()
    assert train.classes[0] == "airplane" and train.class_to_idx["truck"] == 9
    (folder / "batches.meta.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n")
    assert datasets.CIFAR10(tmp_path, train=False).classes[:3] == ["a", "b", "c"]
    (folder / "test_batch.bin").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="not a whole number of 3073-byte CIFAR10 records"):
        datasets.CIFAR10(tmp_path, train=False)


def test_cifar100_binary_reader(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    rng = np.random.default_rng(6)
    coarse, fine = rng.integers(0, 20, 5, dtype=np.uint8), rng.integers(0, 100, 5, dtype=np.uint8)
    planes = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    (folder / "train.bin").write_bytes(b"".join(bytes([coarse[i], fine[i]]) + planes[i].tobytes()
                                                for i in range(5)))
    ds = datasets.CIFAR100(tmp_path)
    assert ds.targets == fine.tolist() and ds.coarse_targets == coarse.tolist()
    np.testing.assert_array_equal(ds.data, planes.transpose(0, 2, 3, 1))
    assert len(ds.classes) == 100 and ds.classes[fine[0]] == ds.classes[ds[0][1]]
    assert ds.class_to_idx["worm"] == 99 and ds.classes == sorted(ds.classes)
    with pytest.raises(RuntimeError, match="test.bin not found.*cifar-100-binary.tar.gz"):
        datasets.CIFAR100(tmp_path, train=False)


def test_cifar10_files_in_root(tmp_path, on):
    raw, labels, planes = cifar_records(3, seed=4)
    (tmp_path / "test_batch.bin").write_bytes(raw)
    ds = datasets.CIFAR10(tmp_path, train=False, transform=T.ToTensor())
    x, y = ds[1]
    assert tuple(x.shape) == (3, 32, 32) and y == labels[1]
    np.testing.assert_allclose(x.numpy(), planes[1].astype(np.float32) / 255, rtol=1e-7)


# ---- FakeData, ImageFolder ----------------------------------------------------------------
def test_fake_data_is_repeatable_and_leaves_the_generator_alone():
    ds = datasets.FakeData(size=6, image_size=(3, 8, 5), num_classes=4)
    state = clgrad.get_rng_state()
    img, target = ds[2]
    assert clgrad.get_rng_state() == state
    assert img.shape == (8, 5, 3) and img.dtype == np.uint8 and 0 <= target < 4
    again, t2 = ds[2]
    np.testing.assert_array_equal(img, again)
    assert t2 == target
    assert not np.array_equal(img, ds[3][0])
    assert not np.array_equal(img, datasets.FakeData(6, (3, 8, 5), 4, random_offset=1)[2][0])
    assert len({ds[i][1] for i in range(6)} | {datasets.FakeData(50, (1, 1, 1), 4)[i][1]
                                                for i in range(50)}) == 4
    with pytest.raises(IndexError):
        ds[6]


def png_with_filters(img: np.ndarray) -> bytes:
    """A PNG whose rows use filter types 0..4 in turn (Sub, Up, Average, Paeth as the PNG
    specification defines them), to exercise the reader's unfiltering."""
    h, w, c = img.shape
    x = img.astype(np.int32).reshape(h, w * c)
    rows = []
    for y in range(h):
        kind = y % 5
        prev = x[y - 1] if y else np.zeros(w * c, np.int32)
        left = np.concatenate([np.zeros(c, np.int32), x[y, :-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if kind == 4:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        else:
            pred = [0, left, prev, (left + prev) // 2][kind]
        rows.append(bytes([kind]) + ((x[y] - pred) & 255).astype(np.uint8).tobytes())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    color = {1: 0, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_image_folder_reads_png_and_npy(tmp_path):
    rng = np.random.default_rng(3)
    want = {}
    for cls, shape in (("cat", (5, 4, 3)), ("dog", (6, 2))):
        (tmp_path / cls).mkdir()
        for k in range(2):
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            name = tmp_path / cls / f"{k}.png"
            name.write_bytes(utils.encode_png(img))
            want[str(name)] = img
        np.save(tmp_path / cls / "z.npy", np.full((2, 2), 7, np.uint8))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    filtered = rng.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    (tmp_path / "dog" / "y.png").write_bytes(png_with_filters(filtered))
    want[str(tmp_path / "dog" / "y.png")] = filtered
    ds = datasets.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 7 and ds.targets == [0, 0, 0, 1, 1, 1, 1]
    for i, (path, target) in enumerate(ds.samples):
        img, t = ds[i]
        assert t == target
        if path.endswith(".png"):
            np.testing.assert_array_equal(img, want[path])
        else:
            np.testing.assert_array_equal(img, np.full((2, 2), 7, np.uint8))


# ---- transforms ---------------------------------------------------------------------------
def test_to_tensor_scales_uint8_and_keeps_other_dtypes(on):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = T.ToTensor()(hwc)
    assert x.dtype == clgrad.float32 and tuple(x.shape) == (3, 5, 7) and x.device == on
    np.testing.assert_allclose(x.numpy(), hwc.transpose(2, 0, 1).astype(np.float32) / 255,
                               rtol=1e-7, atol=0)
    gray = T.ToTensor()(hwc[:, :, 0])
    assert tuple(gray.shape) == (1, 5, 7)
    f = rng.random((4, 4, 2)).astype(np.float32) * 9
    np.testing.assert_array_equal(T.ToTensor()(f).numpy(), f.transpose(2, 0, 1))
    p = T.PILToTensor()(hwc)
    assert p.dtype == clgrad.uint8
    np.testing.assert_array_equal(p.numpy(), hwc.transpose(2, 0, 1))
    with pytest.raises(TypeError, match="Tensor"):
        T.ToTensor()(x)


class PILLike:
    """What ToTensor needs of a PIL image, without Pillow: the numpy array interface."""

    def __init__(self, array):
        self._a = array
        self.__array_interface__ = array.__array_interface__


def test_image_objects_with_the_array_interface(on):
    hwc = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    x = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()])(PILLike(hwc))
    np.testing.assert_allclose(x.numpy(), hwc[:, ::-1].transpose(2, 0, 1) / np.float32(255),
                               rtol=1e-7)
    with pytest.raises(TypeError, match="numpy array, PIL image or clgrad Tensor"):
        T.RandomCrop(1)([[1, 2]])


def test_normalize_on_tensors_and_errors(on):
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 4, 5)).astype(np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    want = (a - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None,
                                                                                       None]
    x = clgrad.tensor(a)
    np.testing.assert_allclose(T.Normalize(mean, std)(x).numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(x.numpy(), a)                       # not in place
    y = T.Normalize(mean, std, inplace=True)(x)
    np.testing.assert_allclose(x.numpy(), want, rtol=1e-6, atol=1e-6)
    assert y is x
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize((0.0,), (0.0,))
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize((0.0,), (1.0,))(clgrad.zeros(1, 2, 2, dtype=clgrad.uint8))
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize((0.0,), (1.0,))(np.zeros((2, 2)))


def windows(padded, th, tw):
    """Every (th, tw) window of a HWC/HW image, by offset."""
    h, w = padded.shape[:2]
    return {(i, j): padded[i:i + th, j:j + tw] for i in range(h - th + 1)
            for j in range(w - tw + 1)}


def test_random_crop_is_a_window_of_the_padded_image_and_repeats():
    img = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)
    crop = T.RandomCrop((4, 3), padding=2, fill=9)
    padded = np.pad(img, ((2, 2), (2, 2), (0, 0)), constant_values=9)
    every = windows(padded, 4, 3)
    clgrad.manual_seed(7)
    seen = []
    for _ in range(60):
        out = crop(img)
        hits = [k for k, v in every.items() if np.array_equal(v, out)]
        assert hits, "the crop is not a window of the padded image"
        seen.append(hits[0])
    assert len(set(seen)) > 10                       # offsets vary
    clgrad.manual_seed(7)
    again = [crop(img) for _ in range(60)]           # the same seed repeats the offsets
    assert [next(k for k, v in every.items() if np.array_equal(v, out)) for out in again] == seen
    edge = T.RandomCrop(5, padding=(1, 2), padding_mode="edge")(img[:, :, 0])
    assert edge.shape == (5, 5)
    assert any(np.array_equal(v, edge) for v in
               windows(np.pad(img[:, :, 0], ((2, 2), (1, 1)), mode="edge"), 5, 5).values())
    grown = T.RandomCrop(8, pad_if_needed=True)(img)
    assert grown.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="larger than the input image size"):
        T.RandomCrop(7)(img)


def test_random_crop_and_flip_on_tensors(on):
    a = np.random.default_rng(2).random((2, 5, 6)).astype(np.float32)
    x = clgrad.tensor(a)
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    out = T.RandomCrop(4, padding=1)(x).numpy()
    assert any(np.array_equal(padded[:, i:i + 4, j:j + 4], out) for i in range(4)
               for j in range(5))
    refl = T.RandomCrop(7, padding=1, padding_mode="reflect")(x).numpy()
    rpad = np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    assert any(np.array_equal(rpad[:, i:i + 7, j:j + 7], refl) for i in range(1)
               for j in range(2))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x).numpy(), a[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(x).numpy(), a[:, ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x).numpy(), a)
    np.testing.assert_array_equal(T.CenterCrop((3, 2))(x).numpy(), a[:, 1:4, 2:4])


def test_flips_and_center_crop_on_host_images():
    img = np.arange(4 * 5, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(img), img[:, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(img), img[::-1])
    np.testing.assert_array_equal(T.CenterCrop(2)(img), img[1:3, 2:4])   # round(1.5) = 2
    big = T.CenterCrop((6, 5))(img)
    np.testing.assert_array_equal(big, np.pad(img, ((1, 1), (0, 0))))
    clgrad.manual_seed(0)
    flips = sum(np.array_equal(T.RandomHorizontalFlip()(img), img[:, ::-1]) for _ in range(200))
    assert 70 < flips < 130


def test_compose_keeps_the_host_path_and_matches_step_by_step(on):
    img = np.random.default_rng(5).integers(0, 256, (10, 9, 3), dtype=np.uint8)
    steps = [T.ToTensor(), T.RandomHorizontalFlip(), T.RandomCrop(8, padding=2),
             T.Normalize((0.4, 0.5, 0.6), (0.2, 0.3, 0.4)), T.Lambda(lambda t: t * 2)]
    pipeline = T.Compose(steps)
    for seed in range(4):
        clgrad.manual_seed(seed)
        composed = pipeline(img)
        clgrad.manual_seed(seed)
        x = img
        for t in steps:
            x = t(x)
        assert isinstance(composed, clgrad.Tensor) and tuple(composed.shape) == (3, 8, 8)
        np.testing.assert_allclose(composed.numpy(), x.numpy(), rtol=1e-6, atol=1e-6)
    assert "RandomCrop" in repr(pipeline)
    dcgan = T.Compose([T.Resize(16), T.CenterCrop(16), T.ToTensor(),
                       T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])      # DCGAN's, scaled
    out = dcgan(img)
    assert tuple(out.shape) == (3, 16, 16) and -1 <= out.numpy().min() <= out.numpy().max() <= 1
    ends_on_host = T.Compose([T.CenterCrop(4), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    out = ends_on_host(img[:, :, 0])
    want = (img[3:7, 2:6, 0].astype(np.float32)[None] / 255 - 0.5) / 0.5
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6, atol=1e-6)


# resampling weights derived by hand from the triangle filter (see Resize): 8 -> 4 pixels
AA_8_TO_4 = np.array([[3, 3, 1, 0, 0, 0, 0, 0, 0],
                      [0, 1, 3, 3, 1, 0, 0, 0, 0],
                      [0, 0, 0, 1, 3, 3, 1, 0, 0],
                      [0, 0, 0, 0, 0, 1, 3, 3, 0]], dtype=np.float64)[:, :8]
AA_8_TO_4 /= AA_8_TO_4.sum(1, keepdims=True)       # rows: [3,3,1]/7, [1,3,3,1]/8, ..., [1,3,3]/7


def test_resize_weights_by_hand(on):
    a = np.random.default_rng(3).random((2, 8, 8)).astype(np.float32)
    x = clgrad.tensor(a)
    want = AA_8_TO_4 @ a @ AA_8_TO_4.T
    np.testing.assert_allclose(T.Resize(4)(x).numpy(), want, rtol=1e-5, atol=1e-6)
    # without antialias, halving is the mean of each 2x2 block
    blocks = a.reshape(2, 4, 2, 4, 2).mean((2, 4))
    np.testing.assert_allclose(T.Resize(4, antialias=False)(x).numpy(), blocks, rtol=1e-5,
                               atol=1e-6)
    # enlarging: the same as bilinear interpolate with align_corners=False
    up = nn.functional.interpolate(x.unsqueeze(0), size=(11, 13), mode="bilinear",
                                   align_corners=False).squeeze(0)
    np.testing.assert_allclose(T.Resize((11, 13))(x).numpy(), up.numpy(), rtol=1e-5, atol=1e-6)
    host = T.Resize(4)(np.round(a[0] * 255).astype(np.uint8))
    assert host.dtype == np.uint8
    np.testing.assert_array_equal(host, np.rint(AA_8_TO_4 @ np.round(a[0] * 255) @ AA_8_TO_4.T))


def test_resize_host_tensor_and_compose_agree(on):
    img = np.random.default_rng(4).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    for interp in ("bilinear", "nearest"):
        for size in (5, (12, 20), (4, 17)):
            r = T.Resize(size, interpolation=interp)
            staged = T.Compose([T.ToTensor(), r])(img).numpy()
            on_tensor = r(T.ToTensor()(img)).numpy()
            np.testing.assert_allclose(staged, on_tensor, rtol=1e-5, atol=1e-6)
            host = r(img)
            assert host.dtype == np.uint8 and host.shape[:2] == staged.shape[1:]
            np.testing.assert_allclose(host.transpose(2, 0, 1) / 255, staged, atol=0.5 / 255 +
                                       1e-6)
            on_uint8 = r(T.PILToTensor()(img))
            assert on_uint8.dtype == clgrad.uint8
            # both round float32 sums; a sum landing on .5 may round either way
            diff = on_uint8.numpy().astype(int) - host.transpose(2, 0, 1)
            assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.01
    assert T.Resize(5)(img).shape == (5, 7, 3)                      # short edge 9 -> 5
    assert T.Resize(5, max_size=6)(img).shape == (4, 6, 3)          # int(6 * 5 / 7) = 4
    nearest = T.Resize((18, 7), interpolation="nearest")(img)
    np.testing.assert_array_equal(nearest, img[np.arange(18) // 2][:, np.arange(7) * 2])
    with pytest.raises(NotImplementedError, match="bicubic"):
        T.Resize(4, interpolation="bicubic")


def test_resize_matches_torch_interpolate(on):
    torch = pytest.importorskip("torch", reason="parity with PyTorch needs torch installed")
    a = np.random.default_rng(5).random((1, 3, 17, 23)).astype(np.float32)
    for size, aa in (((8, 10), True), ((8, 10), False), ((30, 41), True), ((5, 31), True)):
        want = torch.nn.functional.interpolate(torch.from_numpy(a), size=size, mode="bilinear",
                                               align_corners=False, antialias=aa).numpy()
        got = T.Resize(size, antialias=aa)(clgrad.tensor(a)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    want = torch.nn.functional.interpolate(torch.from_numpy(a), size=(7, 40),
                                           mode="nearest").numpy()
    got = T.Resize((7, 40), interpolation="nearest")(clgrad.tensor(a)).numpy()
    np.testing.assert_array_equal(got, want)


def test_dataloader_workers_run_the_pipeline(on):
    ds = datasets.FakeData(size=12, image_size=(3, 10, 10), num_classes=3,
                           transform=T.Compose([T.RandomCrop(8, padding=1),
                                                T.RandomHorizontalFlip(), T.ToTensor(),
                                                T.Normalize((0.5,) * 3, (0.25,) * 3)]))
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert len(batches) == 3
    for xb, yb in batches:
        assert tuple(xb.shape) == (4, 3, 8, 8) and xb.dtype == clgrad.float32
        v = xb.numpy()
        assert v.min() >= -2.0 - 1e-6 and v.max() <= 2.0 + 1e-6
        assert yb.dtype == clgrad.int64


# ---- models -------------------------------------------------------------------------------
def test_lenet_shapes_names_and_gradients(on):
    clgrad.manual_seed(0)
    net = models.LeNet()
    assert [k for k, _ in net.named_parameters()] == [
        f"{m}.{p}" for m in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")]
    x = clgrad.randn(3, 1, 28, 28)
    loss = nn.functional.cross_entropy(net(x), clgrad.tensor([1, 2, 3]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.isfinite(p.grad.numpy()).all()


def test_lenet_learns_the_bundled_digits_through_the_pipeline(tmp_path, on):
    with np.load(MNIST_5K) as z:
        images, labels = z["images"][::10], z["labels"][::10]     # 500 digits
    write_mnist(tmp_path / "MNIST" / "raw", images, labels, gz=True)
    ds = datasets.MNIST(tmp_path, transform=T.Compose([T.ToTensor(),
                                                       T.Normalize((0.1307,), (0.3081,))]))
    clgrad.manual_seed(0)
    net = models.LeNet()
    opt = clgrad.optim.Adam(net.parameters(), lr=2e-3)
    loader = DataLoader(ds, batch_size=50, shuffle=True, generator=0)
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[:5]) > 2.0                  # chance level: ln 10 = 2.3
    assert np.mean(losses[-5:]) < 1.5, losses         # 30 steps: about 0.9 on cl:0


def resnet_keys(layers):
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in ("weight", "bias", "running_mean",
                                                     "running_var", "num_batches_tracked")]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for stage, n in enumerate(layers, 1):
        for blk in range(n):
            pre = f"layer{stage}.{blk}"
            for i in (1, 2):
                keys += [f"{pre}.conv{i}.weight"] + [f"{pre}.bn{i}.{b}" for b in bn]
            if blk == 0 and stage > 1:
                keys += [f"{pre}.downsample.0.weight"] + [f"{pre}.downsample.1.{b}" for b in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet_state_dict_keys_and_shapes(on):
    r18 = models.resnet18(num_classes=7)
    sd = r18.state_dict()
    assert list(sd) == resnet_keys([2, 2, 2, 2])
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(sd["fc.weight"].shape) == (7, 512)
    assert sum(p.numel() for p in r18.parameters()) == 11_180_103
    assert list(models.resnet34().state_dict()) == resnet_keys([3, 4, 6, 3])
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.resnet18(weights="IMAGENET1K_V1")
    zero = models.resnet18(zero_init_residual=True)
    assert float(zero.layer1[0].bn2.weight.abs().sum()) == 0.0
    assert float(zero.layer1[0].bn1.weight.sum()) == 64.0


def test_resnet18_train_step_runs(on):
    clgrad.manual_seed(0)
    net = models.resnet18(num_classes=3)
    x = clgrad.randn(2, 3, 32, 32)
    out = net(x)
    assert tuple(out.shape) == (2, 3)
    nn.functional.cross_entropy(out, clgrad.tensor([0, 2])).backward()
    assert net.conv1.weight.grad is not None and net.fc.bias.grad is not None
    assert int(net.bn1.num_batches_tracked.item()) == 1


def torch_resnet18(torch, num_classes):
    """A torchvision-equivalent ResNet-18 written here (torchvision is not required): the same
    module names, so its state_dict has torchvision's keys."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            idn = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idn)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            chans = [64, 64, 128, 256, 512]
            for i in range(1, 5):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", tnn.Sequential(Block(chans[i - 1], chans[i], stride),
                                                          Block(chans[i], chans[i], 1)))
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def test_resnet18_loads_a_pytorch_state_dict_and_gives_its_logits(tmp_path, on):
    torch = pytest.importorskip("torch", reason="parity with PyTorch needs torch installed")
    torch.manual_seed(0)
    ref = torch_resnet18(torch, num_classes=10)
    with torch.no_grad():                   # trained-looking batch-norm statistics
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(37)
    ref.eval()
    path = tmp_path / "resnet18.npz"
    np.savez(path, **{k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()

    net = models.resnet18(num_classes=10)
    with np.load(path) as z:
        assert list(z.files) == list(net.state_dict())          # torchvision's keys, in order
        net.load_state_dict({k: clgrad.tensor(z[k]) for k in z.files})
    net.eval()
    with clgrad.no_grad():
        got = net(clgrad.tensor(x)).numpy()
    assert int(net.layer3[1].bn2.num_batches_tracked.item()) == 37
    # fp32 through 20 layers with different summation orders: agree to about 1e-5 relative
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0.1                            # the logits are not all ~0


def test_resnet18_trains_like_pytorch(on):
    """Train mode: batch statistics in the forward, running statistics updated, and the
    gradients of the first and last layers after a cross-entropy backward."""
    torch = pytest.importorskip("torch", reason="parity with PyTorch needs torch installed")
    torch.manual_seed(1)
    ref = torch_resnet18(torch, num_classes=5).train()
    net = models.resnet18(num_classes=5)
    net.load_state_dict({k: clgrad.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.array([0, 3, 1, 4])
    out_t = ref(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(out_t, torch.from_numpy(y)).backward()
    out = net(clgrad.tensor(x))
    nn.functional.cross_entropy(out, clgrad.tensor(y)).backward()
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(net.layer4[1].bn2.running_var.numpy(),
                               ref.layer4[1].bn2.running_var.numpy(), rtol=1e-4, atol=1e-5)
    for name in ("fc.weight", "fc.bias", "layer4.1.conv2.weight", "conv1.weight"):
        got = dict(net.named_parameters())[name].grad.numpy()
        want = dict(ref.named_parameters())[name].grad.numpy()
        # fp32 sums through 20 layers and batch statistics of 4 samples: measured up to 1e-4
        # of the gradient's own scale (conv1), so compare at 3e-4 of it
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=3e-4 * np.abs(want).max())


# ---- make_grid / save_image ---------------------------------------------------------------
def grid_reference(a, nrow, padding, pad_value):
    """torchvision's layout, by hand: image k at cell (k // xmaps, k % xmaps)."""
    if a.shape[1] == 1:
        a = np.concatenate([a] * 3, 1)
    b, c, h, w = a.shape
    xmaps = min(nrow, b)
    ymaps = -(-b // xmaps)
    out = np.full((c, ymaps * (h + padding) + padding, xmaps * (w + padding) + padding),
                  pad_value, a.dtype)
    for k in range(b):
        y, x = divmod(k, xmaps)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        out[:, top:top + h, left:left + w] = a[k]
    return out


@pytest.mark.parametrize("b,c,nrow,padding,pad_value", [(5, 3, 2, 2, 0.5), (4, 1, 8, 1, 0.0),
                                                        (7, 3, 3, 0, 1.0), (2, 3, 8, 3, 0.25)])
def test_make_grid_matches_the_layout(on, b, c, nrow, padding, pad_value):
    a = np.random.default_rng(b).random((b, c, 4, 6)).astype(np.float32)
    g = utils.make_grid(clgrad.tensor(a), nrow=nrow, padding=padding, pad_value=pad_value)
    np.testing.assert_array_equal(g.numpy(), grid_reference(a, nrow, padding, pad_value))


def test_make_grid_lists_single_images_and_normalize(on):
    a = np.random.default_rng(0).random((3, 3, 2, 2)).astype(np.float32) * 4 - 1
    listed = utils.make_grid([clgrad.tensor(im) for im in a], nrow=2)
    np.testing.assert_array_equal(listed.numpy(), grid_reference(a, 2, 2, 0.0))
    one = utils.make_grid(clgrad.tensor(a[:1]))
    np.testing.assert_array_equal(one.numpy(), a[0])          # one image: no padding
    gray = utils.make_grid(clgrad.tensor(a[0, :1]))
    np.testing.assert_array_equal(gray.numpy(), np.concatenate([a[0, :1]] * 3))
    norm = utils.make_grid(clgrad.tensor(a), normalize=True, padding=0).numpy()
    want = (a - a.min()) / (a.max() - a.min())
    np.testing.assert_allclose(norm, grid_reference(want, 8, 0, 0.0), rtol=1e-6, atol=1e-6)
    ranged = utils.make_grid(clgrad.tensor(a), normalize=True, value_range=(0.0, 2.0),
                             padding=0).numpy()
    np.testing.assert_allclose(ranged, grid_reference(np.clip(a, 0, 2) / 2, 8, 0, 0.0),
                               rtol=1e-6, atol=1e-6)
    each = utils.make_grid(clgrad.tensor(a), normalize=True, scale_each=True, padding=0).numpy()
    per = np.stack([(im - im.min()) / (im.max() - im.min()) for im in a])
    np.testing.assert_allclose(each, grid_reference(per, 8, 0, 0.0), rtol=1e-6, atol=1e-6)


def parse_png(data: bytes):
    """A PNG reader for the test: chunks with their CRCs, IHDR, IDAT rows (filter 0 only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + n
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * ch)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, ch)


def test_save_image_writes_a_png_we_can_read_back(tmp_path, on):
    a = np.random.default_rng(1).random((3, 3, 5, 4)).astype(np.float32) * 1.2 - 0.1
    path = tmp_path / "grid.png"
    utils.save_image(clgrad.tensor(a), str(path), nrow=3, padding=1)
    pixels = parse_png(path.read_bytes())
    grid = grid_reference(a, 3, 1, 0.0)
    want = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert pixels.shape == want.shape == (7, 16, 3)
    np.testing.assert_array_equal(pixels, want)
    gray = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 1, 3, 4)
    buf = io.BytesIO()
    utils.save_image(clgrad.tensor(gray), buf)
    np.testing.assert_array_equal(parse_png(buf.getvalue())[:, :, 0],
                                  (gray[0, 0] * 255 + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="PNG only"):
        utils.save_image(clgrad.tensor(gray), tmp_path / "x.jpg")
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_png(utils.encode_png(rgba)), rgba)
