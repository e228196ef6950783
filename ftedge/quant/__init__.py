"""Quantization: QAT preparation, PTQ calibration, Q/DQ ONNX export and the accuracy gate."""
