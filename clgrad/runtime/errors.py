"""The exceptions clgrad raises for device, memory and kernel-build problems."""


class CLGradError(RuntimeError):
    """Base class of clgrad's runtime errors."""


class NoOpenCLError(CLGradError):
    """No OpenCL platform or device is installed."""


class DeviceNotFoundError(CLGradError, ValueError):
    """A device spec matched no device."""


class OutOfMemoryError(CLGradError, MemoryError):
    """A device allocation failed even after the buffer pool was emptied."""


class DeviceIndexError(IndexError, RuntimeError):
    """A kernel met an index out of range (reported at the next sync, runtime/faults.py); an
    IndexError, and a RuntimeError where PyTorch raises one for the same op (gather, scatter)."""


class DeviceZeroDivisionError(ZeroDivisionError, RuntimeError):
    """A kernel met an integer division or remainder by zero (PyTorch: RuntimeError
    'ZeroDivisionError')."""


class UnsupportedDTypeError(CLGradError, TypeError):
    """The device lacks the extension a dtype needs (cl_khr_fp64, cl_khr_fp16)."""


class KernelBuildError(CLGradError):
    """An OpenCL program failed to build; carries the build log and the rendered source path."""

    def __init__(self, name, source_path, log, options):
        self.kernel_name = name
        self.source_path = source_path
        self.build_log = log
        self.options = options
        super().__init__(
            f"OpenCL build of {name!r} failed (options: {' '.join(options) or 'none'}).\n"
            f"Rendered source: {source_path}\nBuild log:\n{log.strip() or '(empty)'}")
