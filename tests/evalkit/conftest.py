"""Stand-ins of the networks whose official files cannot be present in tests, each with the official interface.

- ``arcface_onnx``: a small ONNX model with the interface of InsightFace's ``w600k_r50.onnx`` (input
  ``input.1`` (N, 3, 112, 112) float32 → (N, 512)), built with ``onnx.helper`` (seeded weights returned with
  it, so a test can recompute its output with numpy);
- ``i3d_standin``: a TorchScript module with the interface of StyleGAN-V's ``i3d_torchscript.pt``
  (``forward(x, rescale=False, resize=False, return_features=False)``, x (N, 3, T, 224, 224) in [-1, 1] →
  (N, 400) features when ``return_features``).
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def arcface_onnx(tmp_path_factory):
    onnx = pytest.importorskip("onnx", reason="the arcface extra (onnx, onnxruntime) builds and runs ONNX models")
    pytest.importorskip("onnxruntime", reason="the arcface extra (onnx, onnxruntime) runs ArcFace")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.05, (8, 3, 14, 14)).astype(np.float32)
    b = rng.normal(0, 0.1, 8).astype(np.float32)
    fc = rng.normal(0, 0.05, (512, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input.1", "w", "b"], ["c"], name="Conv_0", kernel_shape=[14, 14], strides=[14, 14]),
         helper.make_node("Tanh", ["c"], ["t"], name="Tanh_1"),
         helper.make_node("Flatten", ["t"], ["f"], name="Flatten_2", axis=1),
         helper.make_node("Gemm", ["f", "fc"], ["683"], name="Gemm_3", transB=1)],
        "arcface_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(fc, "fc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("arcface") / "w600k_r50.onnx"
    onnx.save(model, path)

    def reference(faces_uint8: np.ndarray) -> np.ndarray:
        x = (faces_uint8.astype(np.float32) - 127.5) / 127.5  # (N, 112, 112, 3) RGB
        x = x.transpose(0, 3, 1, 2).reshape(len(x), 3, 8, 14, 8, 14)
        c = np.einsum("ncyhxw,kchw->nkyx", x, w) + b[None, :, None, None]
        return np.tanh(c).reshape(len(x), -1) @ fc.T

    return {"path": path, "reference": reference}


@pytest.fixture(scope="session")
def i3d_standin(tmp_path_factory):
    import torch

    class StandInI3D(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 4, kernel_size=(4, 32, 32), stride=(4, 32, 32))
            self.fc = torch.nn.Linear(4 * 7 * 7, 400)

        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            f = self.fc(torch.tanh(self.conv(x).mean(dim=2).flatten(1) * 4.0))
            return f if return_features else torch.softmax(f, dim=1)

    import warnings

    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(StandInI3D().eval())
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    module.save(str(path))
    return path
