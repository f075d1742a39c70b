"""The paper's stages, one module each: matting (alpha, foreground), geometry (normals), albedo, lightmaps
(diffuse + Phong specular light maps from the HDRI) and shading (relit = albedo·diffuse + specular); geometry's
helpers are face_detection and face (MediaPipe's face models) and inflation (the silhouette's height field).
Each stage takes float32 scene-linear HWC arrays and RelightSettings and returns named arrays; blocks runs per-pixel
formulas a band of rows at a time (memory on 8K plates)."""
