"""POST /scenes/{name}/predict/: routed like the client SDK, scored by onnxruntime on the version's model."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deploy.models import ConfigEntry
from apps.deploy.scoring import FeatureError, features_to_inputs
from apps.deploy.services import deployment_create, scene_publish
from conftest import token_client
from mlab_client.routing import Router

from .onnx_models import SIGNATURE, binary_model

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
        ({**ROW, "age": "old"}, "age: expected a number, got str"),
        ({**ROW, "city": ["north"]}, "city: expected a category (text), got list"),
        ({**ROW, "price": None}, "no score"),
    ],
)
def test_bad_features_are_400_naming_them(api, scene, published, features, message):
    response = api.post(predict_url(scene), {"unit_id": "u-1", "features": features}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["features"])


def test_a_missing_category_is_fed_as_the_missing_marker():
    inputs = features_to_inputs(SIGNATURE, {"age": 1, "price": None, "city": None})
    assert inputs["city"][0, 0] == "" and inputs["price"].dtype.name == "float32"
    with pytest.raises(FeatureError) as exc:
        features_to_inputs(SIGNATURE, {"age": True, "price": 1, "city": "x"})
    assert exc.value.errors == ["age: expected a number, got bool"]


def test_predict_needs_a_published_config_and_a_scene_you_own(api, scene, versions, other_user):
    response = api.post(predict_url(scene), {"features": ROW}, format="json")
    assert response.status_code == 409 and "no published deployment" in response.json()["detail"]
    assert token_client(other_user).post(predict_url(scene), {"features": ROW}, format="json").status_code == 404
    assert api.post(predict_url(scene), {"features": "age=3"}, format="json").json().keys() == {"features"}
