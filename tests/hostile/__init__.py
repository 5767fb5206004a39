"""Test support: servers, certificates and name resolution that misbehave on purpose."""
