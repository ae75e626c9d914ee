"""Checkpoint converters: rosinality ``.pt`` and NVIDIA ``.pkl`` (read by a restricted unpickler) to model folders."""
