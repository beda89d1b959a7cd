"""Honest stand-ins for systems outside the carrier's core, behind their proto contracts."""
