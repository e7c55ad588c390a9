"""Small real models that follow mlab_client.contract, built with scikit-learn and skl2onnx for the tests.

One graph input per raw feature ([None, 1]; float for numbers, string for categories), the one-hot encoding
inside the graph, and the mlab.* metadata. The sklearn estimator is returned too, to compare scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from mlab_client import contract

CITIES = ["north", "south", "west"]
SIGNATURE = [
    {"name": "age", "type": contract.NUMBER},
    {"name": "price", "type": contract.NUMBER},
    {"name": "city", "type": contract.STRING, "categories": CITIES},
]


@dataclass(frozen=True)
class BuiltModel:
    onnx_bytes: bytes
    estimator: object

    def encode(self, row: dict) -> np.ndarray:
        """The row as the estimator saw it in training: numbers, then the city one-hot."""
        onehot = [1.0 if row["city"] == city else 0.0 for city in CITIES]
        return np.array([[row["age"], row["price"], *onehot]], dtype=np.float32)


@cache
def binary_model(seed: int = 0) -> BuiltModel:
    """A logistic regression on age, price and city; different seeds give different models."""
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    n = 400
    age = rng.uniform(18, 70, n)
    price = rng.uniform(1, 100, n)
    city = rng.choice(CITIES, n)
    onehot = np.stack([(city == c).astype(float) for c in CITIES], axis=1)
    logit = 0.05 * (age - 40) - 0.03 * (price - 50) + (city == "north") * 1.0 + rng.normal(0, 0.5, n)
    X = np.column_stack([age, price, onehot]).astype(np.float32)
    y = (logit > 0).astype(int)
    estimator = LogisticRegression(max_iter=500).fit(X, y)
    model = convert_sklearn(
        estimator,
        initial_types=[("features", FloatTensorType([None, X.shape[1]]))],
        options={id(estimator): {"zipmap": False}},
    )
    graph = model.graph
    del graph.input[:]
    graph.input.extend(
        [
            helper.make_tensor_value_info("age", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("price", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("city", TensorProto.STRING, [None, 1]),
        ]
    )
    graph.initializer.append(helper.make_tensor("onehot_shape", TensorProto.INT64, [2], [-1, len(CITIES)]))
    prefix = [
        helper.make_node(
            "OneHotEncoder", ["city"], ["city_onehot3d"], domain="ai.onnx.ml", cats_strings=CITIES, zeros=1
        ),
        helper.make_node("Reshape", ["city_onehot3d", "onehot_shape"], ["city_onehot"]),
        helper.make_node("Concat", ["age", "price", "city_onehot"], ["features"], axis=1),
    ]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(prefix + nodes)
    meta = {
        contract.META_SIGNATURE: json.dumps(SIGNATURE),
        contract.META_TASK: "binary",
        contract.META_THRESHOLD: "0.5",
        contract.META_SCORE_OUTPUT: "probabilities",
        contract.META_FORMAT_VERSION: contract.FORMAT_VERSION,
    }
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return BuiltModel(model.SerializeToString(), estimator)
