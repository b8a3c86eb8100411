"""The sampling precision: bf16 where the hardware has bf16 units (or PHENAKI_PRECISION says so), fp32 otherwise;
fp32 reproduces the frames made before bf16 was the default, bf16 stays within bf16's tolerance of them."""

import pytest
import torch
from conftest import tiny_phenaki

from phenaki import sampling
from phenaki.models.attention import reference_paths
from phenaki.precision import choose_precision, cpu_flags, precision, sampling_precision
from phenaki.sampling import SamplingSettings, sample_tokens

PROMPT = "a red circle moves left"
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni
bogus\t\t: amx_bf16

processor\t: 1
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""
SAPPHIRE_RAPIDS = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8\n"
OLDER = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


def test_cpu_flags_are_read_from_the_flags_line():
    assert cpu_flags(EPYC) == {"fpu", "vme", "sse2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert cpu_flags("processor : 0\n") == frozenset() and cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    "device, cpuinfo, environ, expected",
    [
        ("cpu", EPYC, {}, "bf16"),  # AVX512-BF16
        ("cpu", SAPPHIRE_RAPIDS, {}, "bf16"),  # AMX-BF16
        ("cpu", OLDER, {}, "fp32"),  # no bf16 units: bf16 is emulated, slower
        ("cpu", "", {}, "fp32"),  # no /proc/cpuinfo
        ("cuda", "", {}, "bf16"),
        ("mps", EPYC, {}, "fp32"),
        ("cpu", EPYC, {"PHENAKI_PRECISION": "fp32"}, "fp32"),
        ("cuda", "", {"PHENAKI_PRECISION": "fp32"}, "fp32"),
        ("cpu", OLDER, {"PHENAKI_PRECISION": " BF16 "}, "bf16"),
        ("cpu", OLDER, {"PHENAKI_PRECISION": ""}, "fp32"),  # empty: unset
        ("cpu", EPYC, {"OTHER": "fp32"}, "bf16"),
    ],
)
def test_the_precision_rule(device, cpuinfo, environ, expected):
    assert choose_precision(device, cpu_flags(cpuinfo), environ) == expected


@pytest.mark.parametrize("value", ["fp16", "float32", "auto", "1"])
def test_a_bad_environment_value_names_the_allowed_ones(value):
    with pytest.raises(ValueError, match=f"PHENAKI_PRECISION .* must be one of fp32, bf16, got '{value}'"):
        choose_precision("cpu", cpu_flags(EPYC), {"PHENAKI_PRECISION": value})


def test_the_environment_is_read_when_deciding_and_reference_paths_are_fp32(monkeypatch):
    monkeypatch.setenv("PHENAKI_PRECISION", "bf16")
    assert sampling_precision("cpu") == "bf16"
    monkeypatch.setenv("PHENAKI_PRECISION", "fp32")
    assert sampling_precision("cpu") == "fp32"
    with precision("bf16"):
        assert sampling_precision("cpu") == "bf16"
        with reference_paths():
            assert sampling_precision("cpu") == "fp32"
    monkeypatch.setenv("PHENAKI_PRECISION", "half")
    with pytest.raises(ValueError, match="must be one of fp32, bf16"):
        sampling_precision("cpu")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        precision("fp16").__enter__()


def test_fp32_reproduces_the_frames_made_before_bf16_was_a_default(tiny_model, monkeypatch):
    """PHENAKI_PRECISION=fp32: the sample is the plain fp32 window (sample_tokens with autocast off, seeded with the
    seed itself, decoded in fp32), which is what `sample` made before."""
    monkeypatch.setenv("PHENAKI_PRECISION", "fp32")
    settings = SamplingSettings(steps=4)
    video = tiny_model.sample(texts=PROMPT, num_frames=17, settings=settings, seed=3)
    context, mask = tiny_model.encode_text([PROMPT])
    ids = sample_tokens(
        tiny_model.maskgit,
        length=tiny_model.maskgit.max_seq_len,
        context=context,
        context_mask=mask,
        settings=settings,
        critic=tiny_model.critic,
        frame_tokens=tiny_model.frame_tokens,
        generator=torch.Generator().manual_seed(3),
        autocast=False,
    )
    grid = ids.view(1, -1, *tiny_model.grid)
    assert torch.equal(video, tiny_model.cvivit.decode(grid).clamp(0, 1))


def test_bf16_samples_valid_frames_in_bf16(monkeypatch):
    model = tiny_phenaki(seed=3)
    dtypes = []
    for module in (model.maskgit.transformer.layers[0][0].to_q, model.cvivit.to_pixels_first):
        module.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    with precision("bf16"):
        video = model.sample(texts=[PROMPT, "a blue square"], num_frames=29, steps=3, seed=0)
    assert set(dtypes) == {torch.bfloat16}  # the transformers' and the decoder's linear layers ran in bf16
    assert video.dtype == torch.float32 and video.shape == (2, 3, 29, 32, 32)
    assert torch.isfinite(video).all() and video.min() >= 0 and video.max() <= 1


def test_bf16_stays_within_its_tolerance_of_fp32(tiny_model, monkeypatch):
    """The same first step (every token masked) in both precisions: logits within bf16's resolution of the fp32 ones,
    and the same ids decode to frames within a few uint8 levels."""
    seen, original = [], sampling.step_logits
    monkeypatch.setattr(sampling, "step_logits", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    logits = {}
    for name in ("fp32", "bf16"):
        with precision(name):
            tiny_model.sample(texts=PROMPT, num_frames=17, steps=2, refine_passes=0, seed=0)
        logits[name] = seen[0]
        seen.clear()
    scale = logits["fp32"].abs().max()
    assert 0 < (logits["bf16"] - logits["fp32"]).abs().max() <= 0.03 * scale
    ids = torch.randint(
        0,
        tiny_model.cvivit.codebook_size,
        (1, tiny_model.maskgit.max_seq_len),
        generator=torch.Generator().manual_seed(0),
    )
    with precision("fp32"):
        full = tiny_model.decode_ids(ids)
    with precision("bf16"):
        half = tiny_model.decode_ids(ids)
    assert half.dtype == torch.float32 and 0 < (half - full).abs().max() <= 6 / 255  # measured: 2.2-2.8 levels
