"""The daemon's HTTP server: /metrics, health, lifecycle, status page and JSON API."""
