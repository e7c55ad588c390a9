"""POST /scenes/{name}/predict/: routed like the client SDK and scored by the SDK's own model class."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deploy.models import ConfigEntry, ModelVersion
from apps.deploy.scoring import FeatureError, ModelFormatError, model_load
from apps.deploy.services import deployment_create, model_version_register, scene_publish
from conftest import token_client
from mlab_client import Model
from mlab_client.routing import Router

from .onnx_models import binary_model

pytestmark = pytest.mark.django_db

ROW = {"age": 35.0, "price": 20.0, "city": "north"}


def predict_url(scene) -> str:
    return reverse("api:scene-predict", kwargs={"name": scene.name})


@pytest.fixture
def published(scene, versions, user):
    deployment_create(
        scene=scene,
        splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
        overrides={"pinned": 3},
        user=user,
    )
    scene_publish(scene_id=scene.pk)
    return ConfigEntry.objects.get(scene=scene)


def test_predict_routes_like_the_sdk_and_scores_like_the_model(api, scene, published):
    router = Router.from_config(published.content)
    seen = set()
    for unit in ("u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "pinned"):
        response = api.post(predict_url(scene), {"unit_id": unit, "features": ROW}, format="json")
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["version"] == router.version_for(unit) and body["revision"] == 1
        model = binary_model(body["version"])  # versions 1, 2, 3 were built from seeds 1, 2, 3
        expected = float(model.estimator.predict_proba(model.encode(ROW))[0, 1])
        assert body["score"] == pytest.approx(expected, abs=1e-5)
        assert body["label"] == int(body["score"] >= 0.5)
        seen.add(body["version"])
    assert 3 in seen and seen & {1, 2}


def test_predict_without_a_unit_draws_a_bucket(api, scene, published):
    response = api.post(predict_url(scene), {"features": ROW}, format="json")
    assert response.status_code == 200 and response.json()["version"] in (1, 2)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"age": 35.0, "city": "north"}, "missing feature: price"),
        ({"city": "north"}, "missing features: age, price"),
        ({**ROW, "colour": "red"}, "unknown feature: colour"),
        ({**ROW, "age": "old"}, "age: expects a number (or None when missing), got the string 'old'"),
        ({**ROW, "city": ["north"]}, "city: expects a string category (or None when missing), got list"),
        ({**ROW, "price": None}, "no score"),
    ],
)
def test_bad_features_are_400_naming_them(api, scene, published, features, message):
    response = api.post(predict_url(scene), {"unit_id": "u-1", "features": features}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["features"])


def test_the_server_scores_with_the_sdks_model_and_its_feature_mapping(scene, versions):
    loaded = model_load(versions[0].artifact)
    assert isinstance(loaded.model, Model) and loaded.model.sha256 == versions[0].sha256
    assert model_load(versions[0].artifact) is loaded  # cached per sha256
    sdk = Model(binary_model(1).onnx_bytes)
    for row in (ROW, {**ROW, "city": None}, {**ROW, "city": "unseen"}, {"age": 3, "price": 7, "city": "west"}):
        assert loaded.score(row) == sdk.predict(row)
    feeds = loaded.model.feeds({"age": 1, "price": 2, "city": None})
    assert feeds["city"][0, 0] == "" and feeds["price"].dtype.name == "float32"  # the missing-category marker
    with pytest.raises(FeatureError) as exc:
        loaded.score({"age": 1, "price": 2, "city": "x", "colour": "red", "size": 3})
    assert exc.value.errors == ["unknown features: colour, size"]


def test_an_artifact_that_breaks_the_contract_cannot_be_scored(api, scene, make_run, user):
    version = model_version_register(run=make_run(data=b"not a model", format="bin"), scene=scene, user=user)
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        model_load(ModelVersion.objects.get(pk=version.pk).artifact)
    deployment_create(scene=scene, splits=[{"version": version.version, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    response = api.post(predict_url(scene), {"features": ROW}, format="json")
    assert response.status_code == 409 and "cannot be scored here" in response.json()["detail"]


def test_predict_needs_a_published_config_and_a_scene_you_own(api, scene, versions, other_business_user):
    response = api.post(predict_url(scene), {"features": ROW}, format="json")
    assert response.status_code == 409 and "no published deployment" in response.json()["detail"]
    bob = token_client(other_business_user)
    assert bob.post(predict_url(scene), {"features": ROW}, format="json").status_code == 404
    assert api.post(predict_url(scene), {"features": "age=3"}, format="json").json().keys() == {"features"}
