"""faceshot_backends: the backend contract and the built-in animators.

Empty in this release: the plugin contract, the CPU warp animator and the landmark-export backend
are being built next (see the project issues).  Nothing here pretends to animate yet.
"""
