"""Error types shared by every faceshot layer.

The CLI turns a :class:`FaceshotUserError` into a one-line message and exit code 2, and lets any
other exception surface as a bug (a traceback).  So the rule for raising is simple: when the
fault lies in what the user gave us (a path, a file's content, an option), raise a subclass of
:class:`FaceshotUserError` with a message that names the input and the problem.
"""

from __future__ import annotations


class FaceshotError(Exception):
    """Base class of all errors raised on purpose by faceshot."""


class FaceshotUserError(FaceshotError):
    """A mistake in the user's input; shown as one line, exit code 2, no traceback."""


class InvalidLandmarksError(FaceshotUserError, ValueError):
    """Landmark data of the wrong shape, with NaN/inf, or far outside its image."""


class LandmarkFileError(FaceshotUserError):
    """A landmark file that cannot be read or written (unknown format, bad content)."""


class MediaError(FaceshotUserError):
    """An image or video that cannot be read, or an output that cannot be written."""


class NoFaceError(FaceshotUserError):
    """No face was found where one is required (for example in every frame of a video)."""


class MissingDependencyError(FaceshotUserError):
    """An optional component (extra, model weights) is not installed or not found."""


class OutOfSpaceError(MediaError):
    """The disk (or quota) filled up while an output was written; its partial file is removed.

    A fault of the machine rather than of faceshot, so it is one line like a user error; the
    raw ffmpeg or OS messages would only hide the one fact the user needs.
    """


class StillImageError(MediaError):
    """A still image was given where a video is needed (ffmpeg reads it as a one-frame video)."""
