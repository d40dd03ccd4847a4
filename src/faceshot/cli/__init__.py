"""The ``faceshot`` command line (click)."""
