"""Run logs, reports (terminal, HTML, JSON), metrics and the `specroute` command line."""

__all__: list[str] = []
