"""Trunk initialisation: from scratch, torchvision's ImageNet weights, or a local state dict (file I/O here)."""

from __future__ import annotations

from pathlib import Path

from sslad.errors import SsladError
from sslad.files import load_torch_file
from sslad.models.net import PretextNet


def load_trunk_weights(net: PretextNet, weights: str) -> str:
    """Initialise the trunk: ``none`` (from scratch), ``imagenet`` (torchvision API) or a state-dict PATH.

    Returns a short description for the run's log. Raises SsladError with one line on failure.
    """
    if weights in (None, "", "none"):
        return "from scratch"
    if weights == "imagenet":
        from torchvision import models

        enum = {"resnet18": models.ResNet18_Weights, "resnet50": models.ResNet50_Weights}[net.cfg.arch]
        try:
            state = enum.DEFAULT.get_state_dict(progress=False)
        except Exception as exc:  # offline, proxy, corrupt cache: all one line for the user
            raise SsladError(
                f"cannot download ImageNet weights for {net.cfg.arch} ({exc.__class__.__name__}); "
                "offline? pass --weights PATH to a local torchvision state dict"
            ) from exc
        source = f"imagenet ({enum.DEFAULT})"
    else:
        p = Path(weights)
        state = load_torch_file(p, "--weights (none, imagenet or a PATH)")
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise SsladError(f"--weights: {p} does not hold a state dict")
        source = str(p)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = net.trunk.state_dict()
    wrong = [k for k, v in state.items() if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise SsladError(f"--weights: {source} does not fit a torchvision {net.cfg.arch}: {len(wrong)} tensors have "
                         f"other shapes (first: {k} is {tuple(state[k].shape)}, needs {tuple(own[k].shape)})")
    missing, unexpected = net.trunk.load_state_dict(state, strict=False)
    if unexpected or len(missing) > 0:
        raise SsladError(
            f"--weights: {source} does not fit a torchvision {net.cfg.arch} "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    return source
