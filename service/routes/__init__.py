"""HTTP glue: each module is a thin router that fetches its handler from the app's state
(`service.state.app_state`)."""

__all__: list[str] = []
