"""AniPortrait for faceshot: building blocks of the pose-image-driven animator (in progress).

The backend (issue 10) is not registered yet; the modules here are the parts built so far.
"""

__version__ = "0.1.0.dev0"
