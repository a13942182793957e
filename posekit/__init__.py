"""posekit: multi-person 2D keypoint estimation for any keypoint schema."""

from posekit.errors import CheckpointError, ConfigError, DatasetError, PosekitError, SchemaError
from posekit.schema import KeypointSchema, Limb

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "KeypointSchema",
    "Limb",
    "PosekitError",
    "SchemaError",
    "__version__",
]
