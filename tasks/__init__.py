"""Orchestration adapters: one module per pipeline stage, each a Prefect task and a DVC main()."""
