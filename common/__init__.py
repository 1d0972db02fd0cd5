"""Small helpers every part of kilnwatch may import: CLI plumbing, backoff, durations, values.

This package imports nothing else of the project, so ``agent``, ``connectors``, ``rules`` and
``simulator`` can all depend on it without a circle (docs/architecture.md, "Import directions").
"""
