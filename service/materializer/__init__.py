"""The materializer: a consumer group that folds room events into room state and publishes each
changed room's document. `Materializer` (core.py) is the facade; see its module for the parts."""

from service.materializer.core import Materializer

__all__ = ["Materializer"]
