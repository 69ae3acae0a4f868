"""Networks (no I/O, no training glue)."""

from sslad.models.net import MEAN, STD, NetConfig, PretextNet, load_trunk_weights

__all__ = ["MEAN", "STD", "NetConfig", "PretextNet", "load_trunk_weights"]
