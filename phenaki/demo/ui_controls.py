"""The sampling controls every tab shows, built in one place from `SamplingSettings`' demo ranges and defaults
(`stories.LIMITS`, `stories.DEFAULTS`): only the slider's granularity, its label and its note are the UI's own."""

from __future__ import annotations

import gradio as gr

from . import stories as logic

# (slider step, label, note under it) for each setting the demo shows
CONTROLS = {
    "steps": (1, "Steps", "MaskGIT decoding steps per window (more: slower)"),
    "guidance_scale": (
        0.5,
        "Guidance scale",
        "How strongly the prompt is followed (1: no guidance, 0: prompt ignored)",
    ),
    "temperature": (0.1, "Temperature", "Randomness of which tokens are kept at each step"),
    "critic_strength": (
        0.05,
        "Critic strength",
        "How much the Token Critic, rather than the generator's own confidence, picks the tokens to keep.",
    ),
    "refine_passes": (1, "Refinement passes", logic.REFINE_NOTE),
}
NO_CRITIC = "This model has no Token Critic, so this stays at 0."


def sampling_slider(name: str, elem_id: str, has_critic: bool = True, note: bool = True) -> gr.Slider:
    """The slider of setting `name`; the critic's is fixed at 0 for a model without a critic."""
    step, label, info = CONTROLS[name]
    critic = name == "critic_strength"
    return gr.Slider(
        *logic.LIMITS[name],
        value=logic.DEFAULTS[name],
        step=step,
        label=label,
        info=(NO_CRITIC if critic and not has_critic else info) if note else None,
        interactive=has_critic or not critic,
        elem_id=elem_id,
    )


def refine_slider(elem_id: str) -> gr.Slider:
    """The refinement passes control (Generate, Live and the Inspect views)."""
    return sampling_slider("refine_passes", elem_id)


def dataframe(rows, columns):
    """A view's table for a gr.Dataframe: rows under named columns."""
    import pandas as pd  # a Gradio dependency; imported where a table is made

    return pd.DataFrame(rows, columns=columns)
