from django.urls import path

from .apis import client, scenes

urlpatterns = [
    path("scenes/", scenes.SceneListCreateApi.as_view(), name="scene-list"),
    path("scenes/<slug:name>/", scenes.SceneDetailApi.as_view(), name="scene-detail"),
    path("scenes/<slug:name>/versions/", scenes.VersionListCreateApi.as_view(), name="scene-version-list"),
    path("scenes/<slug:name>/versions/<int:version>/", scenes.VersionDetailApi.as_view(), name="scene-version-detail"),
    path("scenes/<slug:name>/versions/<int:version>/artifact/", client.artifact_view, name="scene-version-artifact"),
    path("scenes/<slug:name>/deployments/", scenes.DeploymentListCreateApi.as_view(), name="scene-deployment-list"),
    path("scenes/<slug:name>/rollback/", scenes.RollbackApi.as_view(), name="scene-rollback"),
    path("scenes/<slug:name>/predict/", scenes.PredictApi.as_view(), name="scene-predict"),
    path("config/<slug:name>/", client.config_view, name="config"),
]
