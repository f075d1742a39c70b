"""ONNX models: the one registry (registry.MODELS), the one session class (session.OnnxModel, load_model), and
the contract checks for a user's own models (contracts). Written contracts: CONTRACTS.md beside this file."""
