"""The scheduler: steps, flows, runs, speculation and cancellation on trio."""

__all__: list[str] = []
