"""uptime-probe: scripted user journeys, classified failures, exported to Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("uptime-probe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
