"""``faceshot ui``: the web app (Gradio) with a landmark editor; needs ``faceshot[ui]``."""
