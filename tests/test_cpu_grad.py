"""The CPU training forward's small-convolution weight gradient (sslad.models.cpu_grad): the same gradient as
autograd's, taken only where it applies."""

import pytest
import torch
import torch.nn.functional as F

from sslad.models.cpu_grad import SMALL_OUTPUT, conv_weight_grad, training_autocast

CASES = [  # (input H, W, kernel, stride, padding)
    (4, 4, 3, 1, 1), (8, 8, 3, 2, 1), (8, 8, 1, 2, 0), (5, 7, 3, 1, 0), (6, 4, 3, 2, 1),
]


@pytest.mark.parametrize("h,w,k,stride,pad", CASES)
def test_conv_weight_grad_is_autograds(h, w, k, stride, pad):
    """The im2col product is the convolution's weight gradient (fp32, any stride, padding and aspect)."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, h, w)
    weight = torch.randn(7, 5, k, k, requires_grad=True)
    y = F.conv2d(x, weight, None, stride, pad)
    g = torch.randn_like(y)
    y.backward(g)
    got = conv_weight_grad(g, x, (k, k), (stride, stride), (pad, pad))
    torch.testing.assert_close(got, weight.grad, rtol=1e-4, atol=1e-4)


def _step(conv: torch.nn.Conv2d, x: torch.Tensor, substitute: bool):
    """(output, input grad, weight grad, grad_fn name) of one bf16-autocast forward and backward."""
    conv.weight.grad = None
    x = x.detach().requires_grad_(True)
    ctx = training_autocast("cpu", True) if substitute else torch.autocast("cpu", dtype=torch.bfloat16)
    with ctx:
        y = conv(x)
    y.float().square().sum().backward()
    return y.detach(), x.grad, conv.weight.grad.clone(), type(y.grad_fn).__name__


@pytest.mark.parametrize("side,stride", [(4, 1), (8, 2)])
def test_small_convolution_takes_the_product_with_the_same_gradients(side, stride):
    """A layer4-like convolution (4x4 outputs) under training_autocast: its output and input gradient are
    oneDNN's own, its weight gradient autograd's to bf16 rounding, and fp32 like the weight."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(32, 48, 3, stride, 1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(6, 32, side, side).contiguous(memory_format=torch.channels_last)
    y0, gx0, gw0, fn0 = _step(conv, x, substitute=False)
    y1, gx1, gw1, fn1 = _step(conv, x, substitute=True)
    assert fn0 == "ConvolutionBackward0" and fn1 == "_SmallConvBackward"
    assert torch.equal(y0, y1) and y1.dtype == torch.bfloat16
    torch.testing.assert_close(gx1, gx0, rtol=2e-2, atol=1e-3)
    assert gw1.dtype == torch.float32 and gw1.shape == conv.weight.shape
    torch.testing.assert_close(gw1, gw0, rtol=2e-2, atol=2e-2 * gw0.abs().max().item())


def test_the_substitution_applies_only_where_it_pays():
    """Larger outputs, a bias, fp32 training, inference and a frozen weight keep autograd's own convolution."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 4)
    conv = torch.nn.Conv2d(8, 8, 3, 1, 1, bias=False)
    side = int(SMALL_OUTPUT ** 0.5) + 1
    with training_autocast("cpu", True):
        assert type(conv(torch.randn(2, 8, side, side)).grad_fn).__name__ == "ConvolutionBackward0"
        assert type(torch.nn.Conv2d(8, 8, 3, 1, 1)(x).grad_fn).__name__ == "ConvolutionBackward0"  # bias
        assert type(conv(x).grad_fn).__name__ == "_SmallConvBackward"
        with torch.no_grad():
            assert conv(x).grad_fn is None
    with training_autocast("cpu", False):
        assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"
    conv.weight.requires_grad_(False)
    with training_autocast("cpu", True):
        assert conv(x).grad_fn is None
