"""The networks: `CNN` (the seed classifier and its stronger presets) and `DCGAN` (generator + discriminator)."""

from mnistlab.models.cnn import CNN
from mnistlab.models.dcgan import DCGAN

__all__ = ["CNN", "DCGAN"]
