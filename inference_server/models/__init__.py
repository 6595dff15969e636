"""Networks the engine runs itself (torch/ONNX); each module's docstring says what it may import."""
