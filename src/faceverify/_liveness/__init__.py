"""Liveness: passive presentation-attack checks and the active challenge session."""
