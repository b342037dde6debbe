"""HTTP glue: each module is a thin router that fetches its handler from `app.state.lorag`."""

__all__: list[str] = []
