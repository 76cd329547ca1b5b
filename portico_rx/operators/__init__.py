"""Operators for trigger pipelines (keyed, settlement-aware, scheduler-aware)."""

__all__: list[str] = []
