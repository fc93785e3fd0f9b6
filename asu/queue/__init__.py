"""From a parsed request to its job: intake, per-client limits, the one queue,
abandoned jobs, the backend's status and cleanup."""
