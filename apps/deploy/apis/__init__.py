"""The deploy API: DRF views for people and programs (scenes.py), async views for clients (client.py)."""
