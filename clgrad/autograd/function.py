"""User-defined differentiable operations: Function, its ctx, once_differentiable."""
from __future__ import annotations

import functools
import warnings

from .grad_mode import no_grad
from ..array import Array
from .graph import Context, needs_grad, record

class FunctionCtx(Context):
    pass


class Function:
    """Base class for user-defined differentiable operations (PyTorch's autograd.Function).

    Subclasses define static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)` (or
    `forward(*args)` plus `setup_context(ctx, inputs, output)`), and are called through
    `apply`. `backward` returns one gradient (or None) per forward argument.

    Example::

        class Square(clgrad.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return 2 * x * g

        y = Square.apply(x)
    """

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{self.__class__.__name__} should not be instantiated. Methods on "
                      "autograd functions are all static, so you should invoke them on the "
                      "class itself.", DeprecationWarning)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method.")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        arg_is_tensor = tuple(isinstance(a, Array) for a in args)
        ctx = FunctionCtx([t and a.requires_grad for t, a in zip(arg_is_tensor, args)])
        separate = cls.setup_context is not Function.setup_context
        with no_grad():
            if separate:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not needs_grad(*args):
            return out
        outs = out if isinstance(out, tuple) else (out,)
        dirty = set(ctx.dirty)
        fixed = []
        for o in outs:
            if isinstance(o, Array):
                if id(o) in dirty:
                    if o.requires_grad and o._ctx is None:
                        raise RuntimeError("a leaf Variable that requires grad has been used in "
                                           "an in-place operation.")
                elif any(o is a for a in args):
                    o = o._alias()      # returning an input: the output gets its own identity
            fixed.append(o)
        out_is_tensor = tuple(isinstance(o, Array) for o in fixed)
        name = cls.__name__ + "Backward"
        nargs = len(args)

        def backward(ctx_, *grads):
            it = iter(grads)
            full = [next(it) if is_t else None for is_t in out_is_tensor]
            res = cls.backward(ctx_, *full)
            res = res if isinstance(res, tuple) else (res,)
            if len(res) != nargs:
                if len(res) > nargs and all(r is None for r in res[nargs:]):
                    res = res[:nargs]
                else:
                    raise RuntimeError(f"function {name} returned an incorrect number of "
                                       f"gradients (expected {nargs}, got {len(res)})")
            for i, (r, is_t) in enumerate(zip(res, arg_is_tensor)):
                if r is not None and not is_t:
                    raise RuntimeError(f"function {name} returned a gradient different than "
                                       f"None at position {i + 1}, but the corresponding "
                                       "forward input was not a Variable")
            return res

        record(name, backward, ctx, args, [o for o in fixed if isinstance(o, Array)])
        return tuple(fixed) if isinstance(out, tuple) else fixed[0]


def once_differentiable(fn):
    """Decorate a Function's backward that is not itself differentiable: it runs without
    recording, so a double backward through it sees no graph."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            return fn(ctx, *args)
    return wrapper
