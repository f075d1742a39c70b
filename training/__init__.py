"""Training of Portrait Relight's learned nets (torch; never imported by the extension and not in its zip).

nets.py (the architectures), harness.py (the one resumable training loop, curves, ONNX export, shared by every
net), geometry.py (the geometry net: light-stage samples -> camera-space normals). Run with `make train NET=...`.
"""
