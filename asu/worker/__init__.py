"""The build pipeline a worker runs: ImageBuilders fetched and unpacked, feeds
served, make in the sandbox, images signed and published. Never Flask."""
