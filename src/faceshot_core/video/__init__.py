"""Video reading (streaming, frame by frame) and H.264 writing with optional audio.

Both directions go through the ffmpeg binary that ``imageio-ffmpeg`` ships, so a fresh machine
needs no system ffmpeg: :mod:`~faceshot_core.video.reading` probes and streams frames (never
more than one in memory), :mod:`~faceshot_core.video.writing` pipes frames into the encoder and
writes atomically.
"""

from faceshot_core.video.reading import (
    VideoInfo,
    iter_frames,
    probe_has_audio,
    probe_video,
    still_image_format,
)
from faceshot_core.video.writing import VideoWriter, even_size, write_video

__all__ = [
    "VideoInfo",
    "VideoWriter",
    "even_size",
    "iter_frames",
    "probe_has_audio",
    "probe_video",
    "still_image_format",
    "write_video",
]
