"""Why the reader answered: which pixels of the 28x28 image it saw pushed its answer up or down.

Integrated gradients (Sundararajan et al. 2017, through Captum): each pixel's attribution is its value
times the gradient of the class's logit averaged along the straight path from a blank image (what MNIST's
background is) to the image; the attributions add up to the logit's change from blank to image, so they
split the answer among the pixels and nothing is left over. The runner-up gets the same treatment: its
map minus the answer's shows where ink would have made the model say the runner-up instead (positive:
ink there argues for it; negative: ink there argues for the answer).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mnistlab.errors import MnistlabError

STEPS = 32  # points on the path: the maps' sum within 4 % of the logit change (median, `best`; explain_bench.py)


def integrated_gradients(model: torch.nn.Module, image: np.ndarray, targets: list[int]) -> np.ndarray:
    """(len(targets), 28, 28) attributions of `image` (float (28, 28) in [0, 1]) to each target class's logit."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise MnistlabError("explaining an answer needs Captum: pip install 'mnistlab[explain]'") from None
    was_training = model.training
    model.eval()
    x = torch.as_tensor(image, dtype=torch.float32).reshape(1, 1, 28, 28).repeat(len(targets), 1, 1, 1)
    with torch.enable_grad():
        attributions = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=targets,
                                                            n_steps=STEPS, method="gausslegendre")
    model.train(was_training)
    return attributions[:, 0].detach().numpy()


def explain(models: list[torch.nn.Module], image: np.ndarray, probabilities: np.ndarray,
            classes: list[str]) -> dict[str, Any]:
    """The answer and the runner-up for one framed digit, with their attribution maps (28 x 28, rounded);
    an ensemble's are its members' averaged."""
    answer, runner_up = (int(i) for i in np.argsort(probabilities)[::-1][:2])
    maps = np.mean([integrated_gradients(model, image, [answer, runner_up]) for model in models], axis=0)
    toward_answer, toward_runner_up = maps
    return {"digit": answer, "label": classes[answer], "runner_up": runner_up, "runner_up_label": classes[runner_up],
            "attribution": np.round(toward_answer, 4).tolist(),
            "toward_runner_up": np.round(toward_runner_up - toward_answer, 4).tolist()}
