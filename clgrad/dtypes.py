"""dtypes: their numpy and OpenCL C spellings, and PyTorch's type-promotion rules."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


_pyfloat, _pyint, _pybool = float, int, bool


@dataclass(frozen=True, eq=False)
class DType:
    name: str
    np: np.dtype
    ctype: str           # storage type in kernels
    compute: str         # type arithmetic happens in (half is computed in float)
    is_floating: bool
    is_signed: bool
    rank: int            # order within its category for promotion
    short: str           # suffix of kernel names

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def host_np(self) -> np.dtype:
        """The numpy dtype of this dtype's values on the host (float32 for bfloat16's)."""
        return np.dtype(np.float32) if self.name == "bfloat16" else self.np

    @property
    def is_complex(self) -> bool:
        return False

    @property
    def category(self) -> int:
        return 2 if self.is_floating else (0 if self is bool_ else 1)

    def __repr__(self) -> str:
        return f"clgrad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


def _by_name(name):
    return _NAMES[name]


float16 = DType("float16", np.dtype(np.float16), "half", "float", True, True, 1, "f16")
# bfloat16: the top half of a float32, kept as its 16 bits (numpy has no bfloat16); kernels load
# it by a shift and store it rounded to nearest even. Its rank ties float16's: promoting the two
# gives float32, as in PyTorch.
bfloat16 = DType("bfloat16", np.dtype(np.uint16), "ushort", "float", True, True, 1, "bf16")
float32 = DType("float32", np.dtype(np.float32), "float", "float", True, True, 2, "f32")
float64 = DType("float64", np.dtype(np.float64), "double", "double", True, True, 3, "f64")
uint8 = DType("uint8", np.dtype(np.uint8), "uchar", "uchar", False, False, 1, "u8")
int8 = DType("int8", np.dtype(np.int8), "char", "char", False, True, 1, "i8")
int16 = DType("int16", np.dtype(np.int16), "short", "short", False, True, 2, "i16")
int32 = DType("int32", np.dtype(np.int32), "int", "int", False, True, 3, "i32")
int64 = DType("int64", np.dtype(np.int64), "long", "long", False, True, 4, "i64")
bool_ = DType("bool", np.dtype(np.bool_), "uchar", "uchar", False, False, 0, "b8")

half, float, double = float16, float32, float64
LOW_FLOATS = (float16, bfloat16)
short, int, long = int16, int32, int64

ALL = (float16, bfloat16, float32, float64, uint8, int8, int16, int32, int64, bool_)
_NAMES = {d.name: d for d in ALL}
_NP = {d.np: d for d in ALL if d is not bfloat16}     # uint16 bits are not a bfloat16 array

_default_float = float32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(d) -> None:
    global _default_float
    d = to_dtype(d)
    if not d.is_floating:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def to_dtype(d) -> DType:
    """Accept a clgrad dtype, a numpy dtype or type, a name ('float32'), or a Python type."""
    if isinstance(d, DType):
        return d
    if d is None:
        return _default_float
    if d is _pyfloat:
        return _default_float
    if d is _pyint:
        return int64
    if d is _pybool:
        return bool_
    if isinstance(d, str) and d in _NAMES:
        return _NAMES[d]
    try:
        return _NP[np.dtype(d)]
    except (TypeError, KeyError):
        raise TypeError(f"clgrad does not support dtype {d!r}; supported: "
                        f"{', '.join(_NAMES)}") from None


def from_numpy_dtype(d) -> DType:
    d = np.dtype(d)
    if d in _NP:
        return _NP[d]
    if d.kind == "f":
        return float64
    if d.kind in "iu":
        return int64
    raise TypeError(f"can't convert numpy array of dtype {d} to a clgrad tensor; supported: "
                    f"{', '.join(_NAMES)}")


def promote(a: DType, b: DType) -> DType:
    """PyTorch's promote_types for two tensor dtypes."""
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == 1 and a.is_signed != b.is_signed:
        # uint8 with a signed type: the signed type if wider, else int16 (int8 + uint8)
        signed, unsigned = (a, b) if a.is_signed else (b, a)
        return signed if signed.itemsize > unsigned.itemsize else int16
    if a.rank == b.rank and a.category == 2:
        return float32           # float16 with bfloat16: neither holds the other
    return a if a.rank >= b.rank else b


def scalar_category(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return 0
    if isinstance(x, (_pyint, np.integer)):
        return 1
    return 2


def result_type(*args) -> DType:
    """Promote tensors (anything with .dtype) and Python scalars as torch.result_type does.

    Dimensioned tensors win over 0-d tensors of the same category, and both win over Python
    scalars, which only raise the category (int tensor + 2.5 -> default float)."""
    dims, zerod, scalars = None, None, None
    for x in args:
        dt = getattr(x, "dtype", None)
        if isinstance(dt, DType):
            if getattr(x, "ndim", 1) == 0:
                zerod = dt if zerod is None else promote(zerod, dt)
            else:
                dims = dt if dims is None else promote(dims, dt)
        else:
            cat = scalar_category(x)
            scalars = cat if scalars is None else max(scalars, cat)
    out = dims
    if zerod is not None:
        if out is None or zerod.category > out.category:
            out = zerod
    if scalars is not None:
        if out is None:
            out = (bool_, int64, _default_float)[scalars]
        elif scalars > out.category:
            out = (bool_, int64, _default_float)[scalars]
    if out is None:
        raise TypeError("result_type needs at least one argument")
    return out


def torch_name(d: DType) -> str:
    """PyTorch's name of the tensor type, as in `torch.FloatTensor` (used in error messages)."""
    return {"float16": "Half", "bfloat16": "BFloat16", "float32": "Float", "float64": "Double",
            "int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
            "bool": "Bool"}[d.name]


def bf16_bits(a) -> np.ndarray:
    """float values -> bfloat16 bits (uint16), rounded to nearest even as the kernels store them;
    for data entering the device, not for computing."""
    u = np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(u.view(np.float32)), np.uint16(0x7FC0), rounded)


def bf16_values(bits) -> np.ndarray:
    """bfloat16 bits (uint16) -> the float32 values they hold (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
