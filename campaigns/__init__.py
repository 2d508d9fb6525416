"""Outbound campaigns: definitions, audience, compliance, pacing and RQ jobs."""
