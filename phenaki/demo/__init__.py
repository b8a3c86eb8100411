"""The demo's back-end: checked inputs, stories for the UI, start-up, the Inspect views, and the Gradio UI.

Imported by `app.py`, never by the library."""
