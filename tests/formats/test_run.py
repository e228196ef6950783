"""The run folder format: its ONNX graphs are read through one loader."""

import onnx
import pytest
from onnx import TensorProto, helper

from ftedge.errors import RunError
from ftedge.formats.run import load_onnx
from ftedge.runtime.onnxruntime.runner import inference_session


def _tiny_graph(path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("name, fix", [("model.int8.onnx", "ftedge tune --qat"),
                                       ("model.ptq.int8.onnx", "ftedge quantize"),
                                       ("model.fp32.onnx", "exports it again from best.pt")])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_graph_is_a_run_error_naming_it_and_the_fix(tmp_path, name, fix, damage):
    path = _tiny_graph(tmp_path / name)
    assert len(load_onnx(path).graph.node) == 1
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"garbage\n",
                      "empty": b""}[damage])
    for load in (load_onnx, lambda p: load_onnx(p, load_external_data=False),
                 inference_session):
        with pytest.raises(RunError, match="is damaged") as e:
            load(path)
        assert name in e.value.message and fix in e.value.hint
