"""MOFA-Video for faceshot: building blocks of the landmark-driven animator (in progress).

The backend itself (SVD-xt-1.1 with the landmark adapter and CMP, windows of 25 frames, loading
the released checkpoints) is issue 9's work in progress; it is not registered with faceshot yet.
The modules here are the parts built so far: forward splatting (:mod:`faceshot_mofa.splatting`),
the conditioning built from a landmark sequence (:mod:`faceshot_mofa.conditioning`), the
adapter's modules in the released layout (:mod:`faceshot_mofa.adapter`) and the UNet forward
with the adapter's residuals (:mod:`faceshot_mofa.unet`).
"""

__version__ = "0.1.0.dev0"
