"""Export stage: one Target per runtime (onnx.py, openvino.py, tensorrt.py), profiles, manifests."""
