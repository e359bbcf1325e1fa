"""Generation: plan and seeds, one shard as a pure function, the local process pool, progress, and the
Recorder for users' own event loops."""
from .plan import RunConfig, validate_request
from .recorder import Recorder
from .run import generate

__all__ = ["generate", "Recorder", "RunConfig", "validate_request"]
