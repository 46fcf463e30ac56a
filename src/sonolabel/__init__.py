"""sonolabel: annotation and dataset curation for forearm ultrasound video."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sonolabel")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from .errors import InputError, LockError, SchemaError, SonolabelError, StoreError  # noqa: E402
from .palette import DAVIS, FOREARM, Palette, load_palette  # noqa: E402

__all__ = [
    "__version__",
    "Palette",
    "FOREARM",
    "DAVIS",
    "load_palette",
    "SonolabelError",
    "InputError",
    "StoreError",
    "SchemaError",
    "LockError",
]
