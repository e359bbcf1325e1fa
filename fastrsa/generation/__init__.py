"""Generation: plan and seeds, one shard as a pure function, the local process pool, progress."""
from .plan import RunConfig, validate_request
from .run import generate

__all__ = ["generate", "RunConfig", "validate_request"]
