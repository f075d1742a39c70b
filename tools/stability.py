"""Shot stability: a still plate with fresh sensor noise and a 1-px jitter per frame, relit frame by frame; how much
the relit pass varies from frame to frame, against how much the plate itself does (the gate: at most 1.5x).

    .venv/bin/python tools/stability.py [--frames 6] [--size 320] [--normals classical|learned|both]
                                        [--albedo classical|learned|both] [--shading classical|learned|both]

Frames are realigned by their jitter before comparing, so only flicker counts, not the motion itself. Variation is
the mean absolute frame-to-frame difference inside the subject (alpha > 0.5 in every frame), relative to the
plate's own. That ratio grows with the relit pass's brightness (how bright the HDRI is against the plate, and the
albedo's level), so each line also gives it with both variations taken relative to their own mean level.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys

from package_loader import load_package

NOISE = 0.01  # sensor noise, scene-linear standard deviation at mid-grey


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--normals", choices=("classical", "learned", "both"), default="both")
    parser.add_argument("--albedo", choices=("classical", "learned", "both"), default="classical")
    parser.add_argument("--shading", choices=("classical", "learned", "both"), default="classical")
    args = parser.parse_args(argv)
    load_package()
    import numpy as np
    import skimage.data
    from bench import bundled_world_hdri

    from portrait_relight.inference import pipeline
    from portrait_relight.inference.io.imageio import read_hdri, srgb_to_linear
    from portrait_relight.inference.lighting.environment import Environment
    from portrait_relight.inference.resample import resize
    from portrait_relight.inference.settings import RelightSettings

    size, pad = args.size, 2
    still = resize(srgb_to_linear(skimage.data.astronaut() / 255.0), size + 2 * pad, size + 2 * pad)
    rng = np.random.default_rng(0)
    shifts = [(int(dy), int(dx)) for dy, dx in rng.integers(-1, 2, (args.frames, 2))]
    plates = []
    for dy, dx in shifts:
        frame = still[pad + dy: pad + dy + size, pad + dx: pad + dx + size]
        noise = rng.normal(0.0, 1.0, frame.shape) * NOISE * np.sqrt(np.maximum(frame, 0.0) / 0.18)
        plates.append(np.maximum(frame + noise, 0.0).astype(np.float32))
    environment = Environment.centred(read_hdri(bundled_world_hdri()))

    def aligned(images: list[np.ndarray]) -> np.ndarray:
        """Each frame moved back by its jitter, cropped to the region every frame covers."""
        return np.stack([np.roll(image, (dy, dx), axis=(0, 1))[pad:-pad, pad:-pad]
                         for image, (dy, dx) in zip(images, shifts)])

    def variation(stack: np.ndarray, mask: np.ndarray) -> float:
        return float(np.abs(np.diff(stack, axis=0)).mean(axis=-1)[:, mask].mean())

    def choices(option: str) -> tuple[str, ...]:
        return ("classical", "learned") if option == "both" else (option,)

    for normals, albedo, shading in itertools.product(choices(args.normals), choices(args.albedo),
                                                       choices(args.shading)):
        settings = dataclasses.replace(RelightSettings(), normals=normals, albedo=albedo, shading=shading)
        method = f"normals {normals}, albedo {albedo}, shading {shading}"
        results = [pipeline.relight(plate, environment, settings).passes for plate in plates]
        alpha = aligned([r["alpha"] for r in results])
        mask = (alpha > 0.5).all(axis=0)
        plate_stack, relit_stack = aligned(plates), aligned([r["relit"][..., :3] for r in results])
        plate_var, relit_var = variation(plate_stack, mask), variation(relit_stack, mask)
        normal_var = variation(aligned([r["normal"] for r in results]), mask)
        level_ratio = float(plate_stack[:, mask].mean() / relit_stack[:, mask].mean())
        print(f"{method:<36} relit variation / plate variation = {relit_var / plate_var:.2f} "
              f"(plate {plate_var:.4f}, relit {relit_var:.4f}; normals {normal_var:.4f} per frame; "
              f"{relit_var / plate_var * level_ratio:.2f} relative to each one's mean level), "
              f"{args.frames} frames at {size}x{size}, gate <= 1.5", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
