"""Run a .tflite model with the real TFLite interpreter (ai-edge-litert) and save its outputs.

Used by tests/test_tflite_converter.py as the reference. It runs in the separate `.venv-tflite`
(ai-edge-litert wants numpy 2, Blender's bpy needs numpy < 2), so it imports nothing from this repo.

    python reference_runner.py MODEL.tflite INPUTS.npz OUT_DIR

INPUTS.npz holds one array per case (key = case name), each shaped like the model's single input.
OUT_DIR receives <case>__<output name>.npy for every output, resolver.txt, and ok.txt when all cases ran.

Kernels: TFLite's plain reference kernels (BUILTIN_REF) where they can run the model, since they are the
definition of each op. MediaPipe's custom op Convolution2DTransposeBias has no builtin kernel; only the
default XNNPACK delegate implements it, so selfie_segmentation falls back to the default resolver (XNNPACK,
which is also what MediaPipe itself runs on CPU).
"""

import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main(model_path: str, inputs_path: str, out_dir: str) -> None:
    try:
        interpreter = Interpreter(model_path=model_path, num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
        resolver = "BUILTIN_REF"
    except RuntimeError as exc:
        if "custom op" not in str(exc):
            raise
        interpreter = Interpreter(model_path=model_path, num_threads=1)
        interpreter.allocate_tensors()
        resolver = "AUTO (XNNPACK)"
    (inp,) = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    cases = np.load(inputs_path)
    for case in cases.files:
        interpreter.set_tensor(inp["index"], cases[case].astype(np.float32))
        interpreter.invoke()
        for out in outputs:
            safe = out["name"].replace("/", "_").replace(":", "_")
            np.save(os.path.join(out_dir, "%s__%s.npy" % (case, safe)), interpreter.get_tensor(out["index"]))
    with open(os.path.join(out_dir, "resolver.txt"), "w") as f:
        f.write(resolver)
    with open(os.path.join(out_dir, "ok.txt"), "w") as f:
        f.write("\n".join(o["name"] for o in outputs))


if __name__ == "__main__":
    main(*sys.argv[1:4])
