"""bf16 training on a CPU, with the weight gradient of small convolutions as one matrix product.

oneDNN computes the weight gradient of a convolution whose output has few positions (ResNet's layer4, 4x4 when the
network trains on 128-px images; layer3 too at 64 px) 3-13x slower than the same sum written as one matrix product
over every output position of the batch (an im2col of the input against the output gradient), on an Intel Xeon
(AMX) at a batch of 96: a whole training step 1.09x faster at 128 px, 1.3x at 64 px (docs/results.md, *The weight
gradient of layer4 as one matrix product*). At 8x8 outputs and more oneDNN is as fast or faster, so only outputs of
at most :data:`SMALL_OUTPUT` positions take the product. The forward pass and the input gradient are oneDNN's own;
the weight gradient is the same sum in another order (bf16 operands, fp32 accumulation, rounded to bf16 as
oneDNN's is): equal to its rounding, not bit for bit.

:func:`training_autocast` is the context every training forward of the project runs in (pretext, distillation,
fine-tuning): bf16 autocast where ``enabled``, and on a CPU this substitution with it. Inference, export and fp32
training never meet it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: Output positions (H x W) up to which a bf16 CPU convolution's weight gradient is one matrix product.
SMALL_OUTPUT = 16


def _pair(v) -> tuple[int, int]:
    return (v[0], v[1]) if isinstance(v, (tuple, list)) else (v, v)


def conv_weight_grad(grad: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int]) -> torch.Tensor:
    """dL/dW (Cout, Cin, kh, kw) of ``conv2d(x, W, stride, padding)`` (groups 1, dilation 1) from the output
    gradient ``grad`` (N, Cout, Ho, Wo): the (N*Ho*Wo, kh*kw*Cin) patches of ``x`` against ``grad``, one product."""
    n, cout, ho, wo = grad.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # N, H, W, C
    cols = torch.stack([xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                        for i in range(kh) for j in range(kw)], dim=3).reshape(n * ho * wo, kh * kw * x.shape[1])
    g = grad.permute(0, 2, 3, 1).reshape(n * ho * wo, cout)
    return (g.t() @ cols).reshape(cout, kh, kw, x.shape[1]).permute(0, 3, 1, 2)


class _SmallConv(torch.autograd.Function):
    """A bias-free bf16 conv2d whose backward computes the weight gradient with :func:`conv_weight_grad`."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        xb, wb = x.to(torch.bfloat16), weight.to(torch.bfloat16)  # what bf16 autocast casts them to
        ctx.save_for_backward(xb, wb)
        ctx.conf = (stride, padding, x.dtype, weight.dtype)
        return F.conv2d(xb, wb, None, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        stride, padding, x_dtype, w_dtype = ctx.conf
        grad = grad.to(torch.bfloat16)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad, x, w, None, list(stride), list(padding), [1, 1], False,
                                                     [0, 0], 1, [True, False, False])[0].to(x_dtype)
        if ctx.needs_input_grad[1]:
            gw = conv_weight_grad(grad, x, w.shape[-2:], stride, padding).to(w_dtype)
        return gx, gw, None, None


def _small_conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor | None:
    """conv2d through :class:`_SmallConv` when it applies (a bf16-autocast CPU training forward of a bias-free,
    ungrouped, undilated convolution with at most :data:`SMALL_OUTPUT` output positions), else None."""
    if (bias is not None or groups != 1 or isinstance(padding, str) or _pair(dilation) != (1, 1)
            or x.dim() != 4 or x.device.type != "cpu" or not torch.is_grad_enabled() or not weight.requires_grad
            or not torch.is_autocast_enabled("cpu") or torch.get_autocast_dtype("cpu") != torch.bfloat16):
        return None
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    ho = (x.shape[-2] + 2 * ph - weight.shape[-2]) // sh + 1
    wo = (x.shape[-1] + 2 * pw - weight.shape[-1]) // sw + 1
    if ho * wo > SMALL_OUTPUT:
        return None
    with torch.autocast("cpu", enabled=False):
        return _SmallConv.apply(x, weight, (sh, sw), (ph, pw))


class _SmallConvMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            out = _small_conv(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


@contextmanager
def training_autocast(device: torch.device | str, enabled: bool) -> Iterator[None]:
    """The context of a training forward: bf16 autocast on ``device`` where ``enabled``; on a CPU, with the small
    convolutions' weight gradient as one matrix product (module docstring)."""
    kind = device.type if isinstance(device, torch.device) else device
    with torch.autocast(kind, dtype=torch.bfloat16, enabled=enabled):
        if enabled and kind == "cpu":
            with _SmallConvMode():
                yield
        else:
            yield
