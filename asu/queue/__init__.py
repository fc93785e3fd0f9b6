"""From a parsed request to its job: admission, per-client limits, the one queue,
abandoned jobs, the backend's state and cleanup."""
