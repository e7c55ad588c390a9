"""Mlab's client SDK: follow a scene's deployments, hot-swap models, route units, predict."""
