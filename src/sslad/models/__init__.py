"""The network (``net``, no I/O), inference (``embed``), training's autocast (``cpu_grad``) and trunk weight loading
(``weights``).

Nothing here knows the data, the pretext task or the scorer.
"""

from sslad.models.cpu_grad import training_autocast
from sslad.models.embed import EMBED_BATCH, Outputs, embed_images, infer_images
from sslad.models.net import MEAN, STD, NetConfig, PretextNet, inference_layout, training_layout
from sslad.models.pair import DiscrepancyNet
from sslad.models.student import STUDENT_ARCHS, StudentConfig, StudentNet, build_network
from sslad.models.weights import load_trunk_weights

__all__ = [
    "DiscrepancyNet", "EMBED_BATCH", "MEAN", "STD", "NetConfig", "Outputs", "PretextNet", "embed_images",
    "infer_images", "inference_layout", "load_trunk_weights", "STUDENT_ARCHS", "StudentConfig", "StudentNet",
    "build_network", "training_autocast", "training_layout",
]
