"""faceshot_core: everything from inputs up to the reposed 68-point landmark sequence.

Landmark schema and files, image/video IO, driving-video landmark detection, coordinate-based
retargeting, landmark rendering (and, in later releases, the appearance-guided matcher and the
backend hook specification).  Import the submodules directly; this package keeps its import
light so that ``faceshot --help`` starts fast.
"""

__version__ = "0.1.0"
