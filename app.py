"""Phenaki text-to-video: the browser demo, locally (`python app.py`, `bash scripts/demo.sh`) or as a Hugging Face
Space (README.md's front matter names this file; the Space runs `python app.py`).

The entry point only: `phenaki.demo.app.main` reads the configuration (PHENAKI_MODEL, PHENAKI_DEVICE, ...; see
its docstring, or `python app.py --help`), loads the model and serves `phenaki.demo.ui.build_demo(model)`.
"""

import os

# no call to any outside server: set before gradio and huggingface_hub are imported (they read them at import)
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:  # ZeroGPU on Hugging Face Spaces: imported before torch (phenaki imports it); without it nothing changes
    import spaces  # noqa: F401
except ImportError:
    pass

from phenaki.demo.app import main  # noqa: E402

if __name__ == "__main__":
    main(prog="app.py")
