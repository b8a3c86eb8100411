"""Every fast path against the plain reference path beside it, on random inputs: the speed work must not change
what the model computes. `phenaki.models.attention.reference_paths()` switches the library onto the reference paths."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import randomised, tiny_phenaki
from torch.utils._python_dispatch import TorchDispatchMode

from phenaki import MaskGit, sampling
from phenaki.models.attention import Attention, Transformer, attend_reference, fast_paths_enabled, reference_paths
from phenaki.precision import precision
from phenaki.sampling import SamplingSettings, sample_tokens

PROMPT = "a red circle moves left"


@pytest.fixture(autouse=True)
def fp32():
    """Fast and reference paths compared in one precision: these tests are about the paths (the reference is fp32);
    bf16 against fp32 is tests/test_precision.py's. Tests of the bf16 code path ask for autocast themselves."""
    with precision("fp32"):
        yield


def make_maskgit(**overrides) -> MaskGit:
    torch.manual_seed(0)
    kwargs = dict(num_tokens=50, max_seq_len=64, dim=32, depth=2, heads=4, dim_head=8, dim_context=24)
    kwargs.update(overrides)
    return randomised(MaskGit(**kwargs))


def test_reference_paths_switch_is_scoped():
    assert fast_paths_enabled()
    with reference_paths():
        assert not fast_paths_enabled()
        with reference_paths():
            assert not fast_paths_enabled()
        assert not fast_paths_enabled()
    assert fast_paths_enabled()
    with pytest.raises(RuntimeError), reference_paths():
        raise RuntimeError
    assert fast_paths_enabled()


@pytest.mark.parametrize("causal, masked", [(False, False), (False, True), (True, False)])  # SDPA takes one
def test_sdpa_matches_plain_attention(causal, masked):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 4, 11, 16, generator=g) for _ in range(3))
    mask = None
    if masked:
        mask = torch.rand(3, 11, generator=g) > 0.3
        mask[:, 0] = True  # every query keeps a key to attend to
    attn_mask = None if mask is None else mask[:, None, None, :]
    fast = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
    torch.testing.assert_close(fast, attend_reference(q, k, v, mask, causal), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cross", [False, True])
def test_attention_module_fast_and_reference_agree(cross):
    torch.manual_seed(2)
    attn = randomised(Attention(32, heads=4, dim_head=8, dim_context=24 if cross else None))
    x = torch.randn(2, 9, 32)
    context, mask = (torch.randn(2, 5, 24), torch.rand(2, 5) > 0.4) if cross else (None, None)
    with torch.no_grad():
        fast = attn(x, context=context, mask=mask, causal=not cross)
        with reference_paths():
            reference = attn(x, context=context, mask=mask, causal=not cross)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)


def test_null_output_is_cross_attention_with_the_whole_text_masked():
    torch.manual_seed(3)
    attn = randomised(Attention(32, heads=4, dim_head=8, dim_context=24))
    x, context = torch.randn(2, 9, 32), torch.randn(2, 5, 24)
    with torch.no_grad(), reference_paths():
        reference = attn(x, context=context, mask=torch.zeros(2, 5, dtype=torch.bool))
    torch.testing.assert_close(attn.null_output().detach().expand_as(reference), reference, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cross-attention only"):
        Attention(32).null_output()


@pytest.mark.parametrize("conditioned", [0, 1, 2])
def test_null_context_rows_match_a_fully_masked_text(conditioned):
    """The unconditioned rows of a guided batch skip the cross-attention: same logits as the reference, in which
    they attend to a text whose every token is masked."""
    model = make_maskgit()
    null_rows = 2
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 51, (conditioned + null_rows, 40), generator=g)
    context = torch.randn(conditioned, 6, 24, generator=g)
    mask = torch.rand(conditioned, 6, generator=g) > 0.3
    mask[:, 0] = True
    positions = torch.randint(0, 40, (conditioned + null_rows, 7), generator=g)
    # reference: every row gets a context; the null rows' is (any text) entirely masked out
    full_context = torch.cat((context, torch.randn(null_rows, 6, 24, generator=g)))
    full_mask = torch.cat((mask, torch.zeros(null_rows, 6, dtype=torch.bool)))
    with torch.no_grad():
        with reference_paths():
            reference = model.logits_at(x, positions, full_context, full_mask)
        fast = model.logits_at(
            x, positions, context if conditioned else None, mask if conditioned else None, null_context_rows=null_rows
        )
        whole = model(x, full_context, full_mask)  # the plain full forward, for good measure
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        reference, whole.gather(1, positions[..., None].expand(-1, -1, 50)), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("scale", [0.0, 3.0, 12.0])
def test_guided_logits_match_both_passes_mixed_after_the_output_layer(scale):
    model = make_maskgit(depth=3)
    g = torch.Generator().manual_seed(12)
    x = torch.randint(0, 51, (3, 40), generator=g)
    context = torch.randn(3, 6, 24, generator=g)
    mask = torch.rand(3, 6, generator=g) > 0.3
    mask[:, 0] = True
    positions = torch.randint(0, 40, (3, 11), generator=g)
    with torch.no_grad():
        fast = model.guided_logits_at(x, positions, context, mask, scale)
        with reference_paths():
            assert torch.allclose(sampling.step_logits(model, x, positions, context, mask, scale), fast, atol=1e-4)
            # the plain computation, spelled out
            cond = model(x, context, mask)
            uncond = model(x, context, torch.zeros_like(mask))
            reference = (uncond + scale * (cond - uncond)).gather(1, positions[..., None].expand(-1, -1, 50))
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


def test_guided_batch_shares_the_layers_before_the_first_cross_attention():
    model = make_maskgit(depth=3)
    first_self_attention = model.transformer.layers[0][0]
    second_self_attention = model.transformer.layers[1][0]
    batches = {1: [], 2: []}
    hooks = [
        first_self_attention.register_forward_hook(lambda m, a, o: batches[1].append(o.shape[0])),
        second_self_attention.register_forward_hook(lambda m, a, o: batches[2].append(o.shape[0])),
    ]
    try:
        with torch.no_grad():
            model.guided_logits_at(
                torch.randint(0, 50, (3, 20)), torch.zeros(3, 4, dtype=torch.long), torch.randn(3, 5, 24), None, 3.0
            )
    finally:
        for hook in hooks:
            hook.remove()
    assert batches == {1: [3], 2: [6]}


def test_guided_transformer_without_cross_attention_still_doubles_the_batch():
    torch.manual_seed(13)
    transformer = randomised(Transformer(32, depth=2, heads=4, dim_head=8))
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        torch.testing.assert_close(transformer(torch.cat((x, x)), guided=True), transformer(torch.cat((x, x))))
    with pytest.raises(ValueError, match="even batch"):
        transformer(torch.randn(3, 7, 32), guided=True)


def test_null_context_rows_are_checked():
    model = make_maskgit()
    x = torch.randint(0, 50, (4, 10))
    with pytest.raises(ValueError, match="null_context_rows must be in"):
        model.embed(x, torch.randn(4, 3, 24), null_context_rows=5)
    with pytest.raises(ValueError, match="context must cover the first 2 rows"):
        model.embed(x, torch.randn(4, 3, 24), null_context_rows=2)


class LogitsRecorder:
    """Keeps every step's (guided) logits, as the sampler computes them."""

    def __init__(self, monkeypatch):
        self.logits = []
        original = sampling.step_logits

        def recording(*args, **kwargs):
            out = original(*args, **kwargs)
            self.logits.append(out.detach().clone())
            return out

        monkeypatch.setattr(sampling, "step_logits", recording)


@pytest.fixture
def same_draws(monkeypatch):
    """Both paths draw tokens the same way, so that ids can be compared one for one: the two ways of drawing agree
    in distribution only (tested on their own below)."""
    monkeypatch.setattr(sampling, "draw_categorical", sampling.draw_by_inverse_cdf)


@pytest.mark.parametrize("fast", [True, False])
def test_categorical_draws_follow_the_probabilities(fast):
    probs = torch.tensor([0.0, 0.1, 0.0, 0.25, 0.05, 0.6, 0.0])  # zeros at the start, the middle and the end
    rows = 40_000
    if fast:
        drawn = sampling.draw_categorical(probs.expand(rows, -1), torch.Generator().manual_seed(0))
    else:
        with reference_paths():
            drawn = sampling.draw_categorical(probs.expand(rows, -1), torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=len(probs)).double()
    assert drawn.shape == (rows,) and counts.sum() == rows
    assert torch.all(counts[probs == 0] == 0)
    expected = probs.double() * rows
    spread = (expected * (1 - probs.double())).sqrt()  # binomial standard deviation
    assert torch.all((counts - expected).abs() <= 5 * spread), (counts, expected)


def test_inverse_cdf_draw_keeps_the_batch_shape_and_takes_unnormalised_rows():
    probs = torch.tensor([[3.0, 0.0, 1.0], [0.0, 0.0, 2.0]]).expand(4, 2, 3)  # sums 4 and 2, not 1
    drawn = sampling.draw_by_inverse_cdf(probs, torch.Generator().manual_seed(1))
    assert drawn.shape == (4, 2)
    assert torch.all(drawn[:, 1] == 2) and torch.all(drawn[:, 0] != 1)
    # seeded: the same generator state gives the same draws
    assert torch.equal(drawn, sampling.draw_by_inverse_cdf(probs, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("prefix", [False, True])
def test_sampler_fast_path_matches_reference_logits_ids_and_frames(prefix, monkeypatch, same_draws):
    model = tiny_phenaki(seed=5, critic=False)
    randomised(model.maskgit, seed=6)
    context, context_mask = model.encode_text([PROMPT, "the blue square moves up"])
    length = 5 * model.frame_tokens
    prefix_ids = torch.randint(0, 64, (2, 2 * model.frame_tokens)) if prefix else None
    settings = SamplingSettings(steps=6, temperature=1.0, guidance_scale=4.0, refine_passes=2)

    def run():
        with monkeypatch.context() as patch:
            recorder = LogitsRecorder(patch)
            ids = sample_tokens(
                model.maskgit,
                length=length,
                context=context,
                context_mask=context_mask,
                settings=settings,
                prefix=prefix_ids,
                frame_tokens=model.frame_tokens,
                generator=torch.Generator().manual_seed(7),
            )
        return ids, recorder.logits

    fast_ids, fast_logits = run()
    with reference_paths():
        reference_ids, reference_logits = run()
    # and refinement: 2 passes, each a step for the even latent frames and one for the odd ones
    assert len(fast_logits) == len(reference_logits) == 6 + 2 * 2
    for fast, reference in zip(fast_logits, reference_logits):
        torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(fast_ids, reference_ids)
    fast_frames = model.decode_ids(fast_ids)
    with reference_paths():
        reference_frames = model.decode_ids(reference_ids)
    torch.testing.assert_close(fast_frames, reference_frames, rtol=1e-4, atol=1e-5)


def test_pipeline_video_is_the_same_on_both_paths(same_draws):
    model = tiny_phenaki(seed=8)
    kwargs = dict(texts=PROMPT, num_frames=9, steps=4, guidance_scale=3.0, critic_strength=0.5, seed=0)
    fast = model.sample(**kwargs)
    with reference_paths():
        reference = model.sample(**kwargs)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


def test_unconditioned_rows_skip_the_text_cross_attention():
    model = tiny_phenaki(seed=9, critic=False)
    cross = model.maskgit.transformer.layers[0][1]
    batches = []
    handle = cross.register_forward_hook(lambda module, args, out: batches.append(out.shape[0]))
    try:
        model.sample(texts=[PROMPT, PROMPT], num_frames=9, steps=3, guidance_scale=3.0, refine_passes=0, seed=0)
        assert batches == [2] * 3  # the conditioned rows only
        batches.clear()
        with reference_paths():
            model.sample(texts=[PROMPT, PROMPT], num_frames=9, steps=3, guidance_scale=3.0, refine_passes=0, seed=0)
        assert batches == [4] * 3  # the reference: both halves through the cross-attention
    finally:
        handle.remove()


def test_bf16_autocast_path_runs_and_stays_close_on_cpu():
    """The GPU runs the transformers under bf16 autocast; the same code path works on the CPU, and its logits stay
    within bf16 precision of the fp32 ones."""
    model = make_maskgit(dim=64, heads=4, dim_head=16)
    g = torch.Generator().manual_seed(10)
    x = torch.randint(0, 51, (4, 40), generator=g)
    context, mask = torch.randn(2, 6, 24, generator=g), torch.ones(2, 6, dtype=torch.bool)
    positions = torch.randint(0, 40, (4, 9), generator=g)
    with torch.no_grad():
        full = model.logits_at(x, positions, context, mask, null_context_rows=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model.logits_at(x, positions, context, mask, null_context_rows=2)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() <= 0.05 * full.abs().max()
    ids = sample_tokens(
        model,
        length=40,
        context=context,
        context_mask=mask,
        autocast=True,
        frame_tokens=8,
        settings=SamplingSettings(steps=4),
        generator=torch.Generator().manual_seed(0),
    )
    assert ids.shape == (2, 40) and ids.max() < 50 and ids.min() >= 0


class WeightCasts(TorchDispatchMode):
    """Counts the bf16 copies made of one weight."""

    def __init__(self, weight):
        super().__init__()
        self.weight, self.count = weight, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            func is torch.ops.aten._to_copy.default
            and args[0].data_ptr() == self.weight.data_ptr()
            and kwargs.get("dtype") == torch.bfloat16
        ):
            self.count += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("refine_passes", [0, 1])
def test_autocast_makes_the_bf16_weights_once_a_window(refine_passes):
    """One autocast region spans the window, so its cache keeps the bf16 weights across the steps (at the paper's
    size, a copy of 1.8 B parameters a step otherwise)."""
    model = make_maskgit(position_grid=(8, 2, 4))
    context, mask = torch.randn(1, 6, 24), torch.ones(1, 6, dtype=torch.bool)
    seen = []
    with WeightCasts(model.transformer.layers[0][0].to_q.weight) as casts:
        sample_tokens(
            model,
            length=64,
            context=context,
            context_mask=mask,
            autocast=True,
            on_step=seen.append,
            settings=SamplingSettings(steps=6, refine_passes=refine_passes),
        )
    assert len(seen) == 6 + 2 * refine_passes and casts.count == 1


def test_bf16_weights_sample_and_stay_close_to_fp32():
    """A MaskGit held in bf16 (no autocast): the guided mix is taken in fp32 and goes back to the weights' dtype."""
    model = make_maskgit(dim=64, heads=4, dim_head=16)
    half = copy.deepcopy(model).to(torch.bfloat16)
    g = torch.Generator().manual_seed(12)
    x, positions = torch.randint(0, 51, (2, 40), generator=g), torch.randint(0, 40, (2, 9), generator=g)
    context, mask = torch.randn(2, 6, 24, generator=g), torch.ones(2, 6, dtype=torch.bool)
    with torch.no_grad():
        full = model.guided_logits_at(x, positions, context, mask, 3.0)
        low = half.guided_logits_at(x, positions, context.bfloat16(), mask, 3.0)
    assert low.dtype == torch.bfloat16 and (low.float() - full).abs().max() <= 0.05 * full.abs().max()
    ids = sample_tokens(
        half,
        length=40,
        context=context.bfloat16(),
        context_mask=mask,
        frame_tokens=8,
        settings=SamplingSettings(steps=4),
        generator=torch.Generator().manual_seed(0),
    )
    assert ids.shape == (2, 40) and 0 <= ids.min() and ids.max() < 50


def test_transformer_with_every_row_unconditioned():
    torch.manual_seed(11)
    transformer = randomised(Transformer(32, depth=2, heads=4, dim_head=8, dim_context=24))
    x = torch.randn(3, 7, 32)
    with torch.no_grad():
        fast = transformer(x, null_context_rows=3)
        with reference_paths():
            reference = transformer(x, context=torch.randn(3, 4, 24), context_mask=torch.zeros(3, 4, dtype=bool))
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth, guided", [(1, False), (3, False), (1, True), (3, True)])
def test_last_layer_at_the_wanted_positions_only(depth, guided):
    """With `positions`, the last layer answers only there (keys and values from every position): same embeddings
    as computing every position and picking at the end, with a padding mask on the keys too."""
    torch.manual_seed(14)
    transformer = randomised(Transformer(32, depth=depth, heads=4, dim_head=8, dim_context=24))
    g = torch.Generator().manual_seed(15)
    b, n = 3, 13
    x = torch.randn(b, n, 32, generator=g)
    x = torch.cat((x, x)) if guided else x
    rows = x.shape[0]
    mask = torch.rand(rows, n, generator=g) > 0.3
    mask[:, 0] = True
    if guided:
        mask = None  # a guided batch is one window twice: no padding
    context = torch.randn(b if guided else rows, 5, 24, generator=g)
    positions = torch.randint(0, n, (b if guided else rows, 4), generator=g)
    last_ff = transformer.layers[-1][2]
    widths = []
    hook = last_ff.register_forward_hook(lambda m, a, o: widths.append(o.shape[1]))
    try:
        with torch.no_grad():
            fast = transformer(x, mask=mask, context=context, guided=guided, positions=positions)
            with reference_paths():
                reference = transformer(x, mask=mask, context=context, guided=guided, positions=positions)
    finally:
        hook.remove()
    assert widths == [4, n]  # fast: the wanted positions only; reference: all of them
    assert fast.shape == reference.shape == (rows, 4, 32)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="positions must have"):
        transformer(x, context=context, guided=guided, positions=positions[:1])


def test_queries_subset_is_for_plain_self_attention():
    attn = Attention(32, heads=4, dim_head=8)
    with pytest.raises(ValueError, match="non-causal self-attention"):
        attn(torch.randn(1, 5, 32), causal=True, queries=torch.zeros(1, 2, dtype=torch.long))


def test_fast_paths_agree_with_local_mixers():
    """Local mixers run before any position is dropped or any half shared: guided logits at some positions of a
    shorter window, fast against the plain computation."""
    model = make_maskgit(depth=3, position_grid=(4, 4, 4), local_mixer=True)
    assert model.transformer.local_mixers[0].to_out.weight.abs().sum() > 0  # randomised: the mixers do work
    g = torch.Generator().manual_seed(16)
    x = torch.randint(0, 51, (2, 40), generator=g)
    context = torch.randn(2, 6, 24, generator=g)
    mask = torch.ones(2, 6, dtype=torch.bool)
    positions = torch.randint(0, 40, (2, 9), generator=g)
    with torch.no_grad():
        fast = model.guided_logits_at(x, positions, context, mask, 3.0)
        with reference_paths():
            cond = model(x, context, mask)
            uncond = model(x, context, torch.zeros_like(mask))
            reference = (uncond + 3.0 * (cond - uncond)).gather(1, positions[..., None].expand(-1, -1, 50))
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)
