"""The MaskGIT sampler: schedule, guidance in one batch, temperature, critic, top-k, text encoded once."""

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
from conftest import randomised, tiny_phenaki
from torch.utils._python_dispatch import TorchDispatchMode

from phenaki import Phenaki
from phenaki.demo import stories
from phenaki.precision import precision
from phenaki.sampling import SamplingSettings, masked_count, sample_tokens

PROMPT = "a red circle moves left"


def test_cosine_schedule():
    total, steps = 144, 12
    counts = [total] + [masked_count(s, steps, total) for s in range(steps)]
    assert counts[-1] == 0
    assert all(a > b for a, b in zip(counts, counts[1:]))
    assert counts[6] == math.floor(total * math.cos(math.pi / 4))


class Calls:
    """Records the batch size of every call of a module, while in a `with` block."""

    def __init__(self, module):
        self.module, self.batches = module, []

    def record(self, module, args, kwargs, out):
        first = args[0] if args else next(iter(kwargs.values()))
        self.batches.append(first.shape[0])

    def __enter__(self):
        self.handle = self.module.register_forward_hook(self.record, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_guidance_runs_both_passes_in_one_batched_forward(tiny_model):
    with Calls(tiny_model.maskgit.transformer) as calls:
        tiny_model.sample(texts=[PROMPT, PROMPT], num_frames=9, steps=5, guidance_scale=3.0, refine_passes=0, seed=0)
    assert calls.batches == [4] * 5  # cond + uncond for a batch of 2, once per step
    with Calls(tiny_model.maskgit.transformer) as calls:
        tiny_model.sample(texts=[PROMPT, PROMPT], num_frames=9, steps=5, guidance_scale=1.0, refine_passes=0, seed=0)
    assert calls.batches == [2] * 5
    # refinement: 2 passes of a step for the even latent frames and one for the odd ones, conditioned, not guided
    with Calls(tiny_model.maskgit.transformer) as calls:
        tiny_model.sample(texts=[PROMPT, PROMPT], num_frames=9, steps=5, guidance_scale=3.0, refine_passes=2, seed=0)
    assert calls.batches == [4] * 5 + [2] * 4


def test_guidance_changes_the_video(tiny_model):
    a = tiny_model.sample(texts=PROMPT, num_frames=9, steps=4, guidance_scale=1.0, seed=0)
    b = tiny_model.sample(texts=PROMPT, num_frames=9, steps=4, guidance_scale=8.0, seed=0)
    assert not torch.equal(a, b)


def test_text_is_encoded_once_per_prompt(tiny_model):
    with Calls(tiny_model.text_encoder.encoder) as calls:
        tiny_model.sample(texts=PROMPT, num_frames=9, steps=6, seed=0)
    assert len(calls.batches) == 1
    with Calls(tiny_model.text_encoder.encoder) as calls:
        chunks = list(tiny_model.stream([(PROMPT, 4.0), ("the red circle moves up", 3.0)], steps=2, seed=0))
    assert len(chunks) > 2 and len(calls.batches) == 2


def states_of(model, **kwargs):
    states = []
    model.sample(texts=PROMPT, num_frames=9, on_step=states.append, **kwargs)
    return states


def test_at_zero_temperature_the_least_confident_are_masked_again(tiny_model):
    states = states_of(tiny_model, steps=6, temperature=0.0, refine_passes=0, seed=0)
    mask_id = tiny_model.maskgit.mask_id
    for state in states[:-1]:
        remasked = state.ids[0] == mask_id
        kept = state.filled[0]
        assert kept.any() and remasked.any()
        assert state.confidence[0][kept].min() >= state.confidence[0][remasked].max()
    assert not (states[-1].ids == mask_id).any()


def test_temperature_anneals_choice_noise(tiny_model):
    # with noise the choice is no longer the pure confidence order, except at the last steps
    states = states_of(tiny_model, steps=6, temperature=50.0, seed=0)
    first = states[0]
    remasked = first.ids[0] == tiny_model.maskgit.mask_id
    assert first.confidence[0][first.filled[0]].min() < first.confidence[0][remasked].max()


def test_top_k_one_and_no_noise_is_deterministic_across_seeds(tiny_model):
    kwargs = dict(texts=PROMPT, num_frames=9, steps=4, temperature=0.0, top_k=1)
    assert torch.equal(tiny_model.sample(seed=0, **kwargs), tiny_model.sample(seed=1, **kwargs))
    kwargs.pop("top_k")
    assert not torch.equal(tiny_model.sample(seed=0, **kwargs), tiny_model.sample(seed=1, **kwargs))


def test_token_temperature_zero_draws_the_most_likely_token(tiny_model):
    kwargs = dict(texts=PROMPT, num_frames=9, steps=4, temperature=0.0)
    argmax = tiny_model.sample(token_temperature=0.0, seed=0, **kwargs)
    assert torch.equal(argmax, tiny_model.sample(token_temperature=0.0, seed=1, **kwargs))
    # in one step (no order to choose) it is top-k 1, whose ties in confidence would reorder later steps; in fp32,
    # where two logits tie at the top far less often than in bf16 (8-bit mantissa), and top-k keeps every tie
    one_step = dict(kwargs, steps=1, refine_passes=0)
    with precision("fp32"):
        assert torch.equal(
            tiny_model.sample(token_temperature=0.0, seed=0, **one_step),
            tiny_model.sample(token_temperature=1.0, top_k=1, seed=2, **one_step),
        )


def test_lower_token_temperature_draws_likelier_tokens(tiny_model):
    # the confidence a token is fixed with is its log-probability under the model, whatever the draw temperature
    def first_step_confidence(token_temperature):
        state = states_of(tiny_model, steps=6, temperature=0.0, token_temperature=token_temperature, seed=0)[0]
        return state.confidence[0][state.filled[0]].mean()

    assert first_step_confidence(0.1) > first_step_confidence(1.0)


def test_critic_strength_decides_what_is_masked_again(tiny_model):
    with Calls(tiny_model.critic) as calls:
        plain = tiny_model.sample(texts=PROMPT, num_frames=9, steps=5, critic_strength=0.0, seed=0)
    assert calls.batches == []
    with Calls(tiny_model.critic) as calls:
        critiqued = tiny_model.sample(texts=PROMPT, num_frames=9, steps=5, critic_strength=1.0, seed=0)
    assert len(calls.batches) == 4  # every step but the last, which masks nothing again
    assert not torch.equal(plain, critiqued)


def test_critic_may_redo_tokens_fixed_at_earlier_steps():
    # a freshly initialised critic scores mostly by token id, so it keeps what it kept; with larger random weights
    # its scores depend on the neighbours too, which change as the window fills in
    model = tiny_phenaki()
    randomised(model.critic, seed=3, scale=1.0)
    states = states_of(
        model, steps=8, critic_strength=1.0, temperature=0.0, token_temperature=1.0, refine_passes=0, seed=0
    )  # no refinement: it masks fixed tokens again by itself
    mask_id = model.maskgit.mask_id
    redone = sum(((a.ids != mask_id) & (b.ids == mask_id)).sum().item() for a, b in zip(states, states[1:]))
    assert redone > 0


def test_refinement_redraws_even_then_odd_latent_frames_from_the_parallel_result(tiny_model):
    steps, passes, ft = 4, 2, tiny_model.frame_tokens
    plain = states_of(tiny_model, steps=steps, refine_passes=0, seed=3)
    states = states_of(tiny_model, steps=steps, refine_passes=passes, seed=3)
    latent = states[0].ids.shape[1] // ft  # 5: frames 0, 2, 4 are redrawn together, then 1, 3
    assert len(plain) == steps and len(states) == steps + passes * 2  # a step for each half
    assert [s.step for s in states] == list(range(len(states)))
    # the same draws up to the end of the parallel steps: the refinement starts from exactly that result
    for a, b in zip(plain, states):
        assert torch.equal(a.ids, b.ids)
    mask_id = tiny_model.maskgit.mask_id
    frame_of = torch.arange(latent * ft) // ft
    before = states[steps - 1].ids
    for k, state in enumerate(states[steps:]):
        inside = (frame_of % 2 == k % 2)[None]  # step 0: even frames; 1: odd; again
        # only those frames are touched: outside them the ids are those after the previous step, nothing is
        # filled and nothing is ranked (score +inf)
        assert torch.equal(state.ids[~inside], before[~inside])
        assert not state.filled[~inside].any() and torch.isinf(state.confidence[~inside]).all()
        # the half is masked and filled again in one step: every token of it drawn anew, none left masked
        assert not (state.ids == mask_id).any() and state.filled[inside].all()
        before = state.ids
    assert not torch.equal(states[-1].ids, plain[-1].ids)


def test_refinement_changes_the_tokens_and_zero_turns_it_off(tiny_model):
    kwargs = dict(texts=PROMPT, num_frames=9, steps=4, seed=0)
    assert torch.equal(tiny_model.sample(refine_passes=0, **kwargs), tiny_model.sample(refine_passes=0, **kwargs))
    assert not torch.equal(tiny_model.sample(refine_passes=0, **kwargs), tiny_model.sample(refine_passes=2, **kwargs))


def test_refinement_needs_whole_latent_frames(tiny_model):
    context, mask = tiny_model.encode_text([PROMPT])
    # the tiny MaskGit has learned positions, no grid to read a frame's size from
    with pytest.raises(ValueError, match="refine_passes > 0 needs frame_tokens"):
        sample_tokens(
            tiny_model.maskgit,
            length=144,
            context=context,
            context_mask=mask,
            settings=SamplingSettings(steps=2, refine_passes=1),
        )
    with pytest.raises(ValueError, match="a prefix of whole frames"):
        sample_tokens(
            tiny_model.maskgit,
            length=144,
            context=context,
            context_mask=mask,
            frame_tokens=16,
            settings=SamplingSettings(steps=2, refine_passes=1),
            prefix=torch.zeros(1, 20, dtype=torch.long),
        )
    ids = sample_tokens(
        tiny_model.maskgit,
        length=144,
        context=context,
        context_mask=mask,
        settings=SamplingSettings(steps=2, refine_passes=0),
    )
    assert ids.shape == (1, 144) and (ids < 64).all()


def test_prefix_is_kept(tiny_model):
    prefix = torch.randint(0, 64, (1, 48))
    context, mask = tiny_model.encode_text([PROMPT])
    ids = sample_tokens(
        tiny_model.maskgit,
        length=144,
        context=context,
        context_mask=mask,
        frame_tokens=16,
        settings=SamplingSettings(steps=3),
        prefix=prefix,
    )
    assert torch.equal(ids[:, :48], prefix) and (ids < 64).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(steps=2.5), "steps must be an integer"),
        (dict(temperature=float("nan")), "temperature must be a finite number"),
        (dict(guidance_scale=float("inf")), "guidance_scale must be a finite number"),
        (dict(guidance_scale="3"), "guidance_scale must be a finite number"),
        (dict(critic_strength=1.5), "critic_strength must be in \\[0, 1\\]"),
        (dict(critic_strength=-0.1), "critic_strength must be in \\[0, 1\\]"),
        (dict(texts=""), "non-empty string"),
        (dict(texts=["ok", "  "]), "texts\\[1\\].*non-empty"),
        (dict(num_frames=0), "num_frames must be a positive integer"),
        (dict(top_k=0), "top_k"),
        (dict(token_temperature=-0.5), "token_temperature must be >= 0"),
        (dict(token_temperature=float("nan")), "token_temperature must be a finite number"),
        (dict(refine_passes=-1), "refine_passes must be an integer >= 0"),
        (dict(refine_passes=1.5), "refine_passes must be an integer >= 0"),
        (dict(refine_passes=True), "refine_passes must be an integer >= 0"),
    ],
)
def test_bad_settings_get_clear_errors(tiny_model, kwargs, match):
    args = dict(texts=PROMPT, num_frames=9, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tiny_model.sample(**args)


def test_critic_strength_needs_a_critic():
    model = tiny_phenaki(critic=False)
    with pytest.raises(ValueError, match="needs a model with a Token Critic"):
        model.sample(texts=PROMPT, num_frames=9, steps=2, critic_strength=0.5)


class LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_n_by_n_by_hidden_tensor_is_ever_built():
    from phenaki import MaskGit

    model = MaskGit(num_tokens=64, max_seq_len=512, dim=64, depth=1, heads=2, dim_head=32).eval()
    x = torch.randint(0, 64, (1, 512))
    with torch.no_grad(), LargestTensor() as probe:
        model(x)
    assert probe.largest < 512 * 512 * 64 // 4, probe.largest


def test_attention_goes_through_sdpa(monkeypatch, tiny_model):
    import torch.nn.functional as F

    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    tiny_model.sample(texts=PROMPT, num_frames=9, steps=1, seed=0)
    assert len(calls) >= 2 * 2 + 2  # MaskGit: self + cross in each of 2 layers; the decoder: 2 layers


@pytest.mark.parametrize("method", ["sample", "stream"])
def test_the_pipeline_takes_its_settings_from_the_sampler(tiny_model, method):
    """The sampling defaults and limits live in `SamplingSettings` alone: `sample` and `stream` take a settings
    object and keyword overrides of its fields, and repeat none of them in their signatures."""
    names = SamplingSettings.names()
    parameters = inspect.signature(getattr(Phenaki, method)).parameters
    assert not set(names) & set(parameters) and {"settings", "seed", "on_step", "overrides"} <= set(parameters)
    run = (
        (lambda **kw: tiny_model.sample(texts=PROMPT, num_frames=9, seed=0, **kw))
        if method == "sample"
        else (lambda **kw: np.concatenate([c.frames for c in tiny_model.stream([(PROMPT, 1.0)], seed=0, **kw)]))
    )
    default = run()
    assert np.array_equal(default, run(settings=SamplingSettings()))
    assert np.array_equal(default, run(**dataclasses.asdict(SamplingSettings())))
    assert np.array_equal(run(steps=3, guidance_scale=5.0), run(settings=SamplingSettings(steps=3), guidance_scale=5.0))
    with pytest.raises(
        ValueError,
        match="unknown sampling setting 'cond_scale': the settings are steps, "
        "temperature, guidance_scale, critic_strength, top_k",
    ):
        run(cond_scale=3.0)
    with pytest.raises(ValueError, match="settings must be a phenaki.sampling.SamplingSettings, got dict"):
        run(settings=dict(steps=3))


def test_settings_limits_and_help_are_the_fields_metadata():
    limits, ui, help_texts = SamplingSettings.limits(), SamplingSettings.limits(ui=True), SamplingSettings.help_texts()
    assert list(limits) == list(help_texts) == SamplingSettings.names() and all(help_texts.values())
    assert limits["steps"] == (1, None) and limits["guidance_scale"] == (None, None)  # the library: open above
    assert limits["critic_strength"] == ui["critic_strength"] == (0.0, 1.0)
    assert ui == dict(
        steps=(1, 64),
        temperature=(0.0, 10.0),
        guidance_scale=(0.0, 30.0),
        critic_strength=(0.0, 1.0),
        refine_passes=(0, 4),
    )  # what the demo offers (phenaki.demo.stories.LIMITS)
    for name, (low, high) in ui.items():  # a slider never offers what the library refuses
        default = getattr(SamplingSettings, name)
        assert low <= default <= high
        SamplingSettings(**{name: low}).validate(has_critic=True)
        SamplingSettings(**{name: high}).validate(has_critic=True)
    assert stories.LIMITS == ui and stories.DEFAULTS == dict(seed=-1, **{k: getattr(SamplingSettings, k) for k in ui})
    assert [f.name for f in dataclasses.fields(stories.Settings)] == SamplingSettings.names() + ["seed"]
    SamplingSettings(steps=200, temperature=50.0, guidance_scale=-2.0, top_k=3).validate(has_critic=False)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 0\. steps: parallel MaskGIT steps"):
        SamplingSettings(steps=0).validate(has_critic=False)


@pytest.mark.parametrize(
    "settings",
    [
        dict(steps=4, critic_strength=0.5, refine_passes=1),
        dict(steps=6, critic_strength=1.0, refine_passes=2, temperature=3.0, top_k=20),
        dict(steps=64, critic_strength=0.5, refine_passes=1),  # the schedule ends before the last step
        dict(steps=3, critic_strength=0.0, refine_passes=0, token_temperature=0.0),
    ],
)
def test_an_on_step_callback_changes_no_frame(tiny_model, settings):
    """`on_step` sees extra work after a window's last step (a critic pass), but draws nothing: the generator is
    where sampling without it leaves it, so every later window and frame is the same."""
    states = []
    kwargs = dict(texts=[PROMPT, "a blue square"], num_frames=25, seed=5, **settings)  # 2 windows, batch of 2
    watched = tiny_model.sample(on_step=states.append, **kwargs)
    assert torch.equal(watched, tiny_model.sample(**kwargs)) and states
    assert {s.window for s in states} == {0, 1} and {s.segment for s in states} == {0}
    timeline = [(PROMPT, 3.0), ("the red circle moves up", 2.0)]
    seen = []
    watched = list(tiny_model.stream(timeline, seed=7, on_step=seen.append, **settings))
    plain = list(tiny_model.stream(timeline, seed=7, **settings))
    assert len(watched) == len(plain) >= 3
    for a, b in zip(watched, plain):
        assert np.array_equal(a.frames, b.frames) and (a.segment, a.start) == (b.segment, b.start)
    # each window's steps carry its index and its timeline entry, in order
    windows = [(s.window, s.segment) for s in seen]
    assert sorted(set(windows)) == [(i, c.segment) for i, c in enumerate(plain)] and windows == sorted(windows)
    assert all(s.step == 0 for s, before in zip(seen[1:], seen) if s.window != before.window)
