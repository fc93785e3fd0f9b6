"""The HTTP side: /api/v1 and the earlier generations, devices, statistics,
metrics, the store and /json, errors and the web page."""
