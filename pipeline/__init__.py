"""dmc-twin: the data engine of the Sangam DMC digital twin."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dmc-twin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
