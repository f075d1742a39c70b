"""Files in and out: plates and HDRIs to float32 scene-linear (imageio), named colour spaces through Blender's OCIO
config (colorspace), the multilayer EXR of passes (exr) and the 3D card's one-pass maps (card_passes)."""
