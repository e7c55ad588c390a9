from django.urls import path

from .apis import artifacts, config, events, results, scenes
from .apis.server_mode import server_mode_path

urlpatterns = [
    # First: every client polls it (see mlabsite/urls.py).
    server_mode_path(
        "config/<slug:name>/", sync_view=config.config_view_sync, async_view=config.config_view_async, name="config"
    ),
    path("scenes/", scenes.SceneListCreateApi.as_view(), name="scene-list"),
    path("scenes/<slug:name>/", scenes.SceneDetailApi.as_view(), name="scene-detail"),
    path("scenes/<slug:name>/versions/", scenes.VersionListCreateApi.as_view(), name="scene-version-list"),
    path("scenes/<slug:name>/versions/<int:version>/", scenes.VersionDetailApi.as_view(), name="scene-version-detail"),
    server_mode_path(
        "scenes/<slug:name>/versions/<int:version>/artifact/",
        sync_view=artifacts.artifact_view_sync,
        async_view=artifacts.artifact_view_async,
        name="scene-version-artifact",
    ),
    path("scenes/<slug:name>/deployments/", scenes.DeploymentListCreateApi.as_view(), name="scene-deployment-list"),
    path("scenes/<slug:name>/rollback/", scenes.RollbackApi.as_view(), name="scene-rollback"),
    path("scenes/<slug:name>/predict/", scenes.PredictApi.as_view(), name="scene-predict"),
    path("scenes/<slug:name>/events/", events.EventsApi.as_view(), name="scene-events"),
    path("scenes/<slug:name>/results/", results.ResultsApi.as_view(), name="scene-results"),
]
