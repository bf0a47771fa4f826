"""Why it answered: integrated-gradient maps that split the answer's logit among the pixels, from the Python API
and POST /api/explain; without Captum, one line."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from mnistlab.errors import MnistlabError
from mnistlab.explain import integrated_gradients
from mnistlab.inference import load

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx is what we have
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_the_maps_add_up_to_the_logits_change_from_a_blank_image(cnn_run, tiny_data):
    classifier = load(cnn_run.dir)
    model = classifier.model.eval()
    errors = []
    for image in tiny_data.test.images[:10].numpy().astype(np.float32) / 255:
        x = torch.as_tensor(image).reshape(1, 1, 28, 28)
        with torch.no_grad():
            change = (model(x) - model(torch.zeros_like(x)))[0]
        answer, other = int(change.argmax()), int(change.argmin())
        maps = integrated_gradients(model, image, [answer, other])
        errors += [abs(maps[k].sum() - change[c].item()) / abs(change[c].item()) for k, c in enumerate((answer, other))]
        assert np.abs(maps[:, image == 0]).max() == 0  # a pixel with no ink, as in the blank, gets nothing
    assert np.median(errors) < 0.05


def test_explain_names_the_answer_and_the_runner_up_and_where_ink_would_argue_for_it(cnn_run, tiny_data):
    classifier = load(cnn_run.dir)
    digit = tiny_data.test.images[0].numpy()
    why = classifier.explain(digit)
    prediction = classifier.predict(digit, abstain=False)[0]
    assert why["digit"] == prediction["digit"] and why["probabilities"] == prediction["probabilities"]
    assert why["runner_up"] == int(np.argsort(prediction["probabilities"])[-2])
    assert np.shape(why["attribution"]) == np.shape(why["toward_runner_up"]) == (28, 28)
    both = integrated_gradients(classifier.model, why["image"], [why["digit"], why["runner_up"]])
    np.testing.assert_allclose(why["toward_runner_up"], both[1] - both[0], atol=2e-4)
    again = classifier.explain(why["image"], framed=True)  # the image as the model saw it, explained as it is
    assert again["attribution"] == why["attribution"]


def test_the_api_explains_a_digit_as_the_model_saw_it(cnn_run, tiny_data):
    from mnistlab.serve.app import create_app

    with TestClient(create_app(cnn_run.dir, None)) as client:
        seen = client.post("/api/predict/pixels", json={"pixels": tiny_data.test.images[0].tolist()}).json()["image"]
        answer = client.post("/api/explain", json={"image": seen})
        assert answer.status_code == 200, answer.text
        why = answer.json()
        expected = load(cnn_run.dir).explain(np.array(seen, np.float32), framed=True)
        assert why["digit"] == expected["digit"] and why["runner_up"] == expected["runner_up"]
        np.testing.assert_allclose(why["attribution"], expected["attribution"], atol=1e-3)
        for bad in ({"image": [[0.0] * 28] * 27}, {"image": [[2.0] * 28] * 28}, {"pixels": seen}):
            assert client.post("/api/explain", json=bad).status_code == 422


def test_without_captum_explaining_is_one_line(cnn_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # as if the extra were not installed
    with pytest.raises(MnistlabError, match=r"needs Captum: pip install 'mnistlab\[explain\]'"):
        load(cnn_run.dir).explain(np.zeros((28, 28)))
