"""Pure Python + numpy/onnxruntime/OpenEXR, never bpy: the Total Relighting pipeline (pipeline.relight) and the
command line's job (command). Subpackages: io/, stages/, lighting/, models/, shots/ (see docs/ARCHITECTURE.md)."""
