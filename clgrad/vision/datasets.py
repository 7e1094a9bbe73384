"""Datasets read from local files (MNIST and Fashion-MNIST IDX, CIFAR-10/100 binary), FakeData and
ImageFolder of .npy/.png files, with torchvision's names, signatures and defaults.

Nothing here touches the network: as in torchvision, `download=True` does nothing when the files
are already there; when they are missing it raises and says where they go. Samples
are numpy images (H, W) or (H, W, C) uint8 where torchvision returns PIL images, so the
transforms' host path (clgrad.vision.transforms) works without Pillow; targets are ints."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..tensor.creation import from_numpy
from ..utils.data import Dataset

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "FakeData", "ImageFolder", "read_idx",
           "write_idx"]

# IDX type codes (LeCun's format): code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array in native byte order."""
    path = Path(path)
    with _open(path) as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
            raise ValueError(f"{path} is not an IDX file (magic bytes {head.hex()})")
        code, ndim = head[2], head[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        dtype = np.dtype(_IDX_TYPES[code])
        data = f.read()
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} ({count * dtype.itemsize} bytes) "
                         f"but {len(data)} bytes follow")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write a numpy array as an IDX file (gzipped when the name ends in .gz)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX has no type code for {array.dtype}")
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += array.astype(_IDX_TYPES[code]).tobytes()
    path = Path(path)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as f:
        f.write(body)


def _missing(name: str, what: str, where: str, download: bool, how: str):
    why = ("download=True cannot fetch them: clgrad.vision has no network access"
           if download else "there is no download (no network access)")
    return RuntimeError(f"{name}: {what} not found in {where}; {why}. {how}")


class _VisionDataset(Dataset):
    def __init__(self, root, transform=None, target_transform=None):
        self.root = os.path.expanduser(str(root)) if root is not None else None
        self.transform = transform
        self.target_transform = target_transform

    def _finish(self, img, target):
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self):
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"    Root location: {self.root}")
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        return "\n".join(lines)


class MNIST(_VisionDataset):
    """MNIST digits from the four IDX files, as torchvision lays them out.

    Looks for `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` (or `t10k-*` for
    train=False), each optionally `.gz`, in `root/MNIST/raw/` and then in `root/` itself.

    Args:
        root: the folder holding `MNIST/raw/` (or the files directly).
        train: the 60,000-image training set, else the 10,000-image test set.
        transform: applied to each image, a (28, 28) uint8 numpy array.
        target_transform: applied to each label (an int).
        download: accepted for torchvision's scripts: the files must already be there (no
            network); when they are missing the error says where they go.

    Example:
        >>> ds = MNIST("data", train=True, transform=transforms.ToTensor())
        >>> img, label = ds[0]            # (1, 28, 28) float tensor in [0, 1], int
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]
    _files = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

    def __init__(self, root, train: bool = True, transform=None, target_transform=None,
                 download: bool = False):
        super().__init__(root, transform, target_transform)
        self.train = train
        self.download = download
        images, labels = self._files[bool(train)]
        self._images = read_idx(self._find(images))
        self._labels = read_idx(self._find(labels)).astype(np.int64)
        if self._images.ndim != 3 or self._labels.shape != self._images.shape[:1]:
            raise ValueError(f"{type(self).__name__}: images of shape {self._images.shape} do "
                             f"not match labels of shape {self._labels.shape}")
        self._data = self._targets = None

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def _find(self, stem: str) -> Path:
        for folder in (self.raw_folder, self.root):
            for name in (stem, stem + ".gz"):
                if os.path.isfile(os.path.join(folder, name)):
                    return Path(folder, name)
        raise _missing(type(self).__name__, f"{stem}[.gz]", f"{self.raw_folder} or {self.root}",
                       self.download, "Copy the four IDX files (optionally gzipped) there.")

    @property
    def data(self):
        """All images as one (N, 28, 28) uint8 tensor, made on first use (torchvision's .data)."""
        if self._data is None:
            self._data = from_numpy(np.ascontiguousarray(self._images))
        return self._data

    @property
    def targets(self):
        """All labels as one (N,) int64 tensor, made on first use (torchvision's .targets)."""
        if self._targets is None:
            self._targets = from_numpy(self._labels)
        return self._targets

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, index):
        return self._finish(self._images[index], int(self._labels[index]))


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): MNIST's file names and format, in `root/FashionMNIST/raw/`."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


class CIFAR10(_VisionDataset):
    """CIFAR-10 from its binary version (`cifar-10-batches-bin/`).

    Each record is one label byte and 3072 pixel bytes (the red, green and blue 32 x 32 planes).
    Reads `data_batch_1.bin` .. `data_batch_5.bin` (train) or `test_batch.bin` from
    `root/cifar-10-batches-bin/`, or from `root/` itself; class names come from
    `batches.meta.txt` when present. (torchvision reads the pickled Python version; the binary
    version needs no unpickling.)

    Args:
        root: the folder holding `cifar-10-batches-bin/`.
        train: the five training batches, else the test batch.
        transform: applied to each image, a (32, 32, 3) uint8 numpy array (HWC, like PIL).
        target_transform: applied to each label (an int).
        download: accepted for torchvision's scripts: the files must already be there (no
            network); when they are missing the error says where they go.

    `.data` is the (N, 32, 32, 3) uint8 numpy array and `.targets` a list of ints, as in
    torchvision.
    """

    base_folder = "cifar-10-batches-bin"
    archive = "cifar-10-binary.tar.gz"
    train_list = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_list = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    meta_file = "batches.meta.txt"
    _labels = 1                     # label bytes before each image; the last is the target

    def __init__(self, root, train: bool = True, transform=None, target_transform=None,
                 download: bool = False):
        super().__init__(root, transform, target_transform)
        self.train = train
        folder = os.path.join(self.root, self.base_folder)
        if not os.path.isdir(folder):
            folder = self.root
        names = self.train_list if train else self.test_list
        missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
        if missing:
            raise _missing(type(self).__name__, ", ".join(missing),
                           f"{os.path.join(self.root, self.base_folder)} or {self.root}",
                           download, f"Unpack the binary version ({self.archive}) there.")
        records = [self._read(os.path.join(folder, n)) for n in names]
        raw = np.concatenate(records) if len(records) > 1 else records[0]
        self._label_bytes = raw[:, :self._labels]
        self.targets = raw[:, self._labels - 1].astype(np.int64).tolist()
        # (N, 3, 32, 32) planes -> (N, 32, 32, 3): the HWC layout of a PIL image
        pixels = raw[:, self._labels:].reshape(-1, 3, 32, 32)
        self.data = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
        meta = os.path.join(folder, self.meta_file)
        if os.path.isfile(meta):
            with open(meta) as f:
                names = [line.strip() for line in f if line.strip()]
            if names:
                self.classes = names

    def _read(self, path):
        raw = np.fromfile(path, dtype=np.uint8)
        record = self._labels + 3 * 32 * 32
        if raw.size % record:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of "
                             f"{record}-byte {type(self).__name__} records")
        return raw.reshape(-1, record)

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self._finish(self.data[index], self.targets[index])


class CIFAR100(CIFAR10):
    """CIFAR-100 from its binary version (`cifar-100-binary/train.bin`, `test.bin`).

    Each record holds a coarse and a fine label byte before the pixels; `.targets` are the fine
    labels (as in torchvision) and `.coarse_targets` the 20 superclasses. Class names come from
    `fine_label_names.txt` when present.
    """

    base_folder = "cifar-100-binary"
    archive = "cifar-100-binary.tar.gz"
    train_list = ["train.bin"]
    test_list = ["test.bin"]
    meta_file = "fine_label_names.txt"
    _labels = 2
    classes = [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
        "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard",
        "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
        "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck",
        "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray",
        "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
        "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
        "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
        "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]

    @property
    def coarse_targets(self) -> list:
        return self._label_bytes[:, 0].astype(np.int64).tolist()


class FakeData(_VisionDataset):
    """Random images and labels, the same for the same index every time.

    Sample i is drawn from a numpy generator keyed on `i + random_offset` (as torchvision seeds
    per index), so it neither reads nor advances clgrad's generator.

    Args:
        size: number of samples.
        image_size: (C, H, W) of each image; samples are (H, W, C) uint8 numpy images.
        num_classes: labels are drawn from range(num_classes).
        transform, target_transform: applied to image and label.
        random_offset: shifts the per-index keys, giving a different dataset.
    """

    def __init__(self, size: int = 1000, image_size=(3, 224, 224), num_classes: int = 10,
                 transform=None, target_transform=None, random_offset: int = 0):
        super().__init__(None, transform, target_transform)
        self.size = int(size)
        self.image_size = tuple(int(s) for s in image_size)
        if len(self.image_size) != 3:
            raise ValueError(f"FakeData: image_size must be (C, H, W), got {image_size}")
        self.num_classes = int(num_classes)
        self.random_offset = int(random_offset)

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        if not -self.size <= index < self.size:
            raise IndexError(f"FakeData index {index} out of range for size {self.size}")
        index %= self.size
        rng = np.random.default_rng([index + self.random_offset, 0x6661_6B65])
        c, h, w = self.image_size
        img = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        target = int(rng.integers(0, self.num_classes))
        return self._finish(img, target)


def _read_png(path) -> np.ndarray:
    """8-bit non-interlaced PNG (gray, gray+alpha, RGB, RGBA) -> (H, W[, C]) uint8."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, head = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    w, h, depth, color, _, _, interlace = head
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: only 8-bit, non-interlaced gray/RGB(A) PNGs are read "
                         f"(bit depth {depth}, colour type {color}, interlace {interlace})")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = _unfilter(raw.reshape(h, 1 + w * channels), channels)
    img = rows.reshape(h, w, channels)
    return img[:, :, 0] if channels == 1 else img


def _unfilter(raw, bpp):
    out = np.zeros((raw.shape[0], raw.shape[1] - 1), dtype=np.uint8)
    prev = np.zeros(raw.shape[1] - 1, dtype=np.int32)
    for y in range(raw.shape[0]):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:                 # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:                 # Up
            cur = (line + prev) & 255
        else:                           # Average and Paeth depend on the pixel just decoded
            cur = np.zeros_like(line)
            for x in range(len(line)):
                a = cur[x - bpp] if x >= bpp else 0
                c = prev[x - bpp] if x >= bpp else 0
                b = prev[x]
                if kind == 3:
                    pred = (a + b) // 2
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise ValueError(f"unknown PNG filter type {kind}")
                cur[x] = (line[x] + pred) & 255
        out[y] = cur
        prev = cur
    return out


def _load_image(path):
    if path.lower().endswith(".npy"):
        return np.load(path)
    return _read_png(path)


class ImageFolder(_VisionDataset):
    """Images in one subfolder per class: `root/<class>/<image>`, classes in sorted order.

    Reads `.png` (8-bit, with the standard library) and `.npy` files without Pillow; pass a
    `loader` (path -> image) for other formats.

    Args:
        root: the folder of class folders.
        transform, target_transform: applied to image and class index.
        loader: reads one file (default: PNG or .npy to a numpy image).
        is_valid_file: keeps a path when it returns True (default: by extension).
        allow_empty: allow a class folder with no valid file.
    """

    IMG_EXTENSIONS = (".png", ".npy")

    def __init__(self, root, transform=None, target_transform=None, loader=None,
                 is_valid_file=None, allow_empty: bool = False):
        super().__init__(root, transform, target_transform)
        self.loader = loader or _load_image
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {self.root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        valid = is_valid_file or (lambda p: p.lower().endswith(self.IMG_EXTENSIONS))
        self.samples = []
        for cls in self.classes:
            found = []
            for dirpath, _, files in sorted(os.walk(os.path.join(self.root, cls),
                                                    followlinks=True)):
                found += [(os.path.join(dirpath, f), self.class_to_idx[cls])
                          for f in sorted(files) if valid(os.path.join(dirpath, f))]
            if not found and not allow_empty:
                raise FileNotFoundError(f"ImageFolder: no valid file in class folder {cls!r} "
                                        f"(extensions {self.IMG_EXTENSIONS})")
            self.samples += found
        self.imgs = self.samples
        self.targets = [s[1] for s in self.samples]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        return self._finish(self.loader(path), target)
