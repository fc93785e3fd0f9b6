"""Processes on this machine: make run's supervisor, its services and nginx,
children that die with their parent, machines as network namespaces."""
