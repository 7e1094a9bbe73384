"""First end-to-end checks of the core: elementwise, reduce, matmul, autograd."""
import numpy as np
import pytest

import clgrad
from helpers import check_op


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(3, 1), (1, 4)], [(), (2, 3)], [(0, 3), (3,)]])
def test_mul_add(device, shapes):
    check_op(shapes, lambda a, b: a * b + a, lambda a, b: a * b + a, device=device)


def test_exp_sum(device):
    check_op([(4, 5)], lambda a: a.exp().sum(dim=1), lambda a: np.exp(a).sum(1), device=device,
             atol=1e-5)


def test_matmul(device):
    check_op([(2, 3, 5), (5, 4)], lambda a, b: a @ b, lambda a, b: a @ b, device=device,
             atol=1e-5)
