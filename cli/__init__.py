"""`lorag`: the command line, one module per command group, registered in `cli.main`.

    cli.main        the root parser, the explicit registration of every group, error handling
    cli.serve       lorag serve
    cli.models      lorag models prepare
    cli.adapters    lorag adapters import|list|show|verify|delete
    cli.tenants     lorag tenants create|list|show|set-mode|remove-mode|rotate-key|delete
    cli.ingest      lorag ingest
    cli.train       lorag train (and train build-raft)
    cli.evaluate    lorag eval retrieval|answers
    cli.mode_report the pure parts of `eval answers`: QA file, judging, the table and chart
    cli.arguments   argparse types shared by the groups
    cli.output      printing shared by the groups: tables, fields, JSON, errors

The CLI sits above every other layer (see `[tool.importlinter]` in pyproject.toml): it is the
one place that wires the gateway, the registry, the knowledge base and training together.
"""

__all__: list[str] = []
