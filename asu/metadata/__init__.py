"""What upstream publishes, loaded by the janitor: lookups, the static tree,
devices, upgrades, package indexes and changes."""
