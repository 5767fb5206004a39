"""Configuration: the frozen model (no I/O) and the loader (YAML -> model, located errors)."""

from uptime_probe.config.errors import ConfigError, ConfigIssue
from uptime_probe.config.loader import load_config, parse_config
from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.config.steps import StepConfig

__all__ = [
    "CheckConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "StepConfig",
    "load_config",
    "parse_config",
]
