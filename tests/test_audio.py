"""Tests for denseav.audio: decoding, torchaudio-compatible resampling, normalisation and input checks."""

from __future__ import annotations

import math
import warnings
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from _fixtures import PARITY_DIRS
from denseav.audio import (
    SAMPLE_RATE,
    _frame_to_float32,
    _StreamingResample,
    decode_audio,
    normalize_waveform,
    prepare_audio,
    resample,
)
from denseav.errors import InputError, InputFileNotFoundError

# ----------------------------------------------------------------------------------------------- helpers


FIXTURES = [p for p in PARITY_DIRS if (p / "audio.wav").is_file()]


def _write_wav_int16(path: Path, data: np.ndarray, rate: int) -> None:
    """data: int16 [channels, samples], written with the stdlib (independent of PyAV)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(data.T).astype("<i2").tobytes())


def _encode_audio(path: Path, codec: str, rate: int, data: np.ndarray, options: dict | None = None) -> None:
    """Encode float32 [channels, samples] with PyAV; PyAV adapts sample format and frame size to the encoder."""
    if codec not in av.codecs_available:
        pytest.skip(f"encoder {codec} not in this PyAV build")
    layout = {1: "mono", 2: "stereo"}[data.shape[0]]
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=rate, layout=layout)
        if options:
            st.codec_context.options = options
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in st.encode(frame):
            out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: torch.Tensor, rate: int) -> float:
    spec = torch.fft.rfft(x.double() * torch.hann_window(x.shape[-1], dtype=torch.float64)).abs()
    return float(spec.argmax()) * rate / x.shape[-1]


# ------------------------------------------------------------------------------------- parity fixtures


@pytest.mark.skipif(not FIXTURES, reason="parity fixtures not found (set DENSEAV_FIXTURES)")
@pytest.mark.parametrize("folder", FIXTURES, ids=lambda p: p.name)
def test_fixture_decode_and_resample(folder: Path) -> None:
    from safetensors.torch import load_file

    expected = load_file(str(folder / "expected.safetensors"))
    wav, rate = decode_audio(folder / "audio.wav")
    head = expected["audio.decoded_head"]
    assert wav.dtype == torch.float32 and wav.shape[0] == head.shape[0]
    torch.testing.assert_close(wav[:, : head.shape[1]], head, atol=0, rtol=0)

    ref = expected["audio.waveform_16k"]
    out = prepare_audio(folder / "audio.wav", channel="first", normalize=False)[None]
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)
    assert (out - ref).abs().max() < 1e-6  # bit-exact in practice; leave room for conv1d summation order
    # The original resampled all channels before taking channel 0; same numbers either way.
    torch.testing.assert_close(resample(wav, rate)[0:1], ref, atol=1e-6, rtol=0)
    # The sparse path agrees with the dense one (and so with torchaudio) to float rounding.
    torch.testing.assert_close(resample(wav[:1], rate, max_dense_kernel=0), ref, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------ resampling


def test_sparse_equals_dense_on_odd_rate() -> None:
    x = torch.randn(2, 6000, generator=torch.Generator().manual_seed(0))
    dense = resample(x, 12345, max_dense_kernel=10**12)
    sparse = resample(x, 12345, max_dense_kernel=0)
    assert dense.shape == sparse.shape == (2, math.ceil(16000 * 6000 / 12345))
    torch.testing.assert_close(sparse, dense, atol=2e-6, rtol=1e-6)


def test_sparse_equals_dense_upsampling() -> None:
    x = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(resample(x, 8000, max_dense_kernel=0), resample(x, 8000), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 22254, 32000, 44100, 48000, 12345, 96000])
@pytest.mark.parametrize("length", [1, 7, 1000, 4567])
def test_output_length(rate: int, length: int) -> None:
    y = resample(torch.zeros(2, length), rate)
    assert y.shape == (2, math.ceil(16000 * length / rate))


def test_same_rate_is_identity() -> None:
    x = torch.randn(100)
    assert SAMPLE_RATE == 16000 and resample(x, SAMPLE_RATE) is x


@pytest.mark.parametrize("rate,freq", [(44100, 1000.0), (48000, 3000.0), (22254, 440.0), (8000, 1500.0)])
def test_sine_keeps_frequency(rate: int, freq: float) -> None:
    y = resample(torch.from_numpy(_sine(freq, rate, 1.0)), rate)
    assert y.shape == (16000,)
    assert abs(_peak_hz(y, 16000) - freq) <= 1.0
    # Amplitude survives in the passband (away from the zero-padded edges).
    assert abs(float(y[2000:-2000].abs().max()) - 0.5) < 0.01


def test_resample_keeps_leading_dims_and_rejects_ints() -> None:
    assert resample(torch.zeros(2, 3, 441), 44100).shape == (2, 3, 160)
    with pytest.raises(InputError, match="floating-point"):
        resample(torch.zeros(10, dtype=torch.int16), 44100)
    with pytest.raises(InputError, match="positive int"):
        resample(torch.zeros(10), 0)


def test_odd_rate_file_never_builds_the_dense_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 22,254 Hz -> 16 kHz reduces to 11127/8000: torchaudio's dense kernel would hold hundreds of MB. The sparse
    # evaluation must be taken instead (its speed is measured in benchmarks, not asserted here).
    import denseav.audio as audio_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dense kernel was built for an odd rate")

    monkeypatch.setattr(audio_module, "_dense_kernel", refuse)
    rate, n = 22254, 22254 * 3
    rng = np.random.default_rng(0)
    _write_wav_int16(tmp_path / "odd.wav", (rng.standard_normal((1, n)) * 3000).astype(np.int16), rate)
    out = prepare_audio(tmp_path / "odd.wav")
    assert out.shape == (math.ceil(16000 * n / rate),)


# --------------------------------------------------------------------------------------- normalisation


def test_normalize_waveform() -> None:
    x = torch.randn(2, 5000, generator=torch.Generator().manual_seed(2)) * 3 + 1
    y = normalize_waveform(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    ref = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-7)
    torch.testing.assert_close(y, ref)
    assert torch.equal(normalize_waveform(torch.zeros(100)), torch.zeros(100))


# ------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", ["u8", "s16", "s32", "flt", "dbl", "u8p", "s16p", "s32p", "fltp", "dblp"])
def test_frame_conversion_formats(fmt: str) -> None:
    ints = np.array([[0, 1, -1, 100, -32768, 32767], [5, -5, 7, -7, 12345, -12345]], dtype=np.int64)
    base = fmt.rstrip("p")
    if base == "u8":
        raw = (ints % 256).astype(np.uint8)
        want = (raw.astype(np.float32) - 128) / 128
    elif base == "s16":
        raw = ints.astype(np.int16)
        want = raw.astype(np.float32) / 32768
    elif base == "s32":
        raw = (ints * 65536 + 3).astype(np.int32)
        want = raw.astype(np.float32) / np.float32(2**31)
    else:
        raw = (ints.astype(np.float64) / 20000).astype(np.float32 if base == "flt" else np.float64)
        want = raw.astype(np.float32)  # floats unchanged, even above 1.0
    planar = fmt.endswith("p")
    arr = raw if planar else np.ascontiguousarray(raw.T).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout="stereo")
    got = _frame_to_float32(frame, 2)
    assert got.dtype == np.float32 and got.shape == (2, 6)
    np.testing.assert_array_equal(got, want)


def test_stereo_wav_channels_and_scaling(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(-32768, 32768, size=(2, 3000)).astype(np.int16)
    _write_wav_int16(tmp_path / "s.wav", data, 44100)
    wav, rate = decode_audio(tmp_path / "s.wav")
    assert rate == 44100 and wav.dtype == torch.float32
    torch.testing.assert_close(wav, torch.from_numpy(data.astype(np.float32) / 32768), atol=0, rtol=0)


def test_float_wav_not_clipped(tmp_path: Path) -> None:
    sig = _sine(300, 16000, 0.25, amp=1.5)
    _encode_wav_f32 = tmp_path / "f.wav"
    _encode_audio(_encode_wav_f32, "pcm_f32le", 16000, sig[None])
    wav, rate = decode_audio(_encode_wav_f32)
    assert rate == 16000
    np.testing.assert_array_equal(wav[0].numpy(), sig)
    assert float(wav.abs().max()) > 1.49
    out = prepare_audio(_encode_wav_f32, normalize=False)
    assert torch.equal(out, torch.from_numpy(sig))  # 16 kHz in, 16 kHz out: untouched


@pytest.mark.parametrize(
    "name,codec,rate,options",
    [
        ("a.mp3", "libmp3lame", 44100, None),
        ("a.flac", "flac", 44100, None),
        ("a.ogg", "libopus", 48000, None),
        ("b.ogg", "vorbis", 44100, {"strict": "experimental"}),
        ("a.m4a", "aac", 44100, None),
        ("a.webm", "libopus", 48000, None),
        ("a.mkv", "pcm_s16le", 22050, None),
    ],
)
def test_compressed_formats(tmp_path: Path, name: str, codec: str, rate: int, options: dict | None) -> None:
    sig = _sine(440, rate, 0.5)
    path = tmp_path / name
    try:
        _encode_audio(path, codec, rate, np.stack([sig, -sig]), options)
    except av.error.FFmpegError as e:  # e.g. an experimental encoder this build refuses
        pytest.skip(f"cannot encode {name} with {codec} here: {e}")
    wav, got_rate = decode_audio(path)
    assert got_rate == rate and wav.shape[0] == 2 and wav.dtype == torch.float32
    # Encoder priming/padding may add up to a few frames; the duration stays ~0.5 s.
    assert abs(wav.shape[1] / rate - 0.5) < 0.08
    assert abs(_peak_hz(wav[0], rate) - 440) < 5
    out = prepare_audio(path, channel="first")
    assert out.shape == (math.ceil(16000 * wav.shape[1] / rate),)
    assert abs(_peak_hz(out, 16000) - 440) < 5


def _write_video(path: Path, with_audio: bool) -> None:
    if "mpeg4" not in av.codecs_available:
        pytest.skip("mpeg4 encoder not in this PyAV build")
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        for i in range(3):
            img = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None:
            frame = av.AudioFrame.from_ndarray(_sine(500, 16000, 0.3)[None], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in a.encode(frame) + a.encode(None):
                out.mux(packet)


def test_video_audio_track(tmp_path: Path) -> None:
    _write_video(tmp_path / "v.mp4", with_audio=True)
    wav, rate = decode_audio(tmp_path / "v.mp4")
    assert rate == 16000 and wav.shape[0] == 1 and abs(wav.shape[1] / rate - 0.3) < 0.15


# ----------------------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(InputFileNotFoundError, match="nope.wav"):
        decode_audio(missing)
    with pytest.raises(FileNotFoundError):
        prepare_audio(str(missing))
    with pytest.raises(InputError, match="not found"):
        prepare_audio(missing)


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n" * 20)
    with pytest.raises(InputError, match=r"could not decode audio from .*notes\.wav.*audio or video file"):
        prepare_audio(bad)


def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        decode_audio(tmp_path)


def test_video_without_audio(tmp_path: Path) -> None:
    _write_video(tmp_path / "silent.mp4", with_audio=False)
    with pytest.raises(InputError, match="has no audio track"):
        prepare_audio(tmp_path / "silent.mp4")


def test_file_without_samples(tmp_path: Path) -> None:
    _write_wav_int16(tmp_path / "empty.wav", np.zeros((1, 0), dtype=np.int16), 16000)
    with pytest.raises(InputError, match="(no audio samples|could not decode)"):
        decode_audio(tmp_path / "empty.wav")


def test_path_with_conflicting_rate(tmp_path: Path) -> None:
    _write_wav_int16(tmp_path / "x.wav", np.ones((1, 800), dtype=np.int16), 8000)
    with pytest.warns(UserWarning):
        assert prepare_audio(tmp_path / "x.wav", 8000).shape == (1600,)
    with pytest.raises(InputError, match="leave sample_rate out"):
        prepare_audio(tmp_path / "x.wav", 44100)


@pytest.mark.parametrize(
    "audio,kwargs,match",
    [
        (np.zeros(0, dtype=np.float32), {"sample_rate": 16000}, "empty"),
        (np.zeros((2, 0), dtype=np.float32), {"sample_rate": 16000}, "empty"),
        (
            np.array([0.1, np.nan, 0.2] * 10, dtype=np.float32),
            {"sample_rate": 16000},
            "NaN/inf samples at 10 positions",
        ),
        (
            torch.tensor([0.1, float("inf"), -float("inf")] * 10),
            {"sample_rate": 16000},
            "NaN/inf samples at 20 positions",
        ),
        (np.ones(100, dtype=np.float32), {}, "sample_rate is required"),
        (np.ones(100, dtype=np.float32), {"sample_rate": 0}, "positive int"),
        (np.ones(100, dtype=np.float32), {"sample_rate": -44100}, "positive int"),
        (np.ones(100, dtype=np.float32), {"sample_rate": 44100.5}, "positive int"),
        (np.ones(100, dtype=np.float32), {"sample_rate": "44100"}, "positive int"),
        (np.ones(100, dtype=np.float32), {"sample_rate": True}, "positive int"),
        (np.ones((2, 100), dtype=np.float32), {"sample_rate": 16000, "channel": 2}, "out of range"),
        (np.ones((2, 100), dtype=np.float32), {"sample_rate": 16000, "channel": "left"}, "'mix', 'first'"),
        (np.ones(100, dtype=np.float32), {"sample_rate": 16000, "channel": 1}, "out of range"),
        (np.ones((100, 200), dtype=np.float32), {"sample_rate": 16000}, r"pass \[channels, samples\]"),
        (np.ones((8, 8), dtype=np.float32), {"sample_rate": 16000}, r"pass \[channels, samples\]"),
        (np.ones((2, 2, 100), dtype=np.float32), {"sample_rate": 16000}, "1-D"),
        (np.ones(100, dtype=bool), {"sample_rate": 16000}, "dtype bool"),
        (np.ones(100, dtype=np.complex64), {"sample_rate": 16000}, "dtype complex64"),
        (np.array([1.0, "a"], dtype=object), {"sample_rate": 16000}, "dtype object"),
        (np.ones(100, dtype=np.int64), {"sample_rate": 16000}, "int16/int32/uint8"),
        (np.ones(100, dtype=np.uint16), {"sample_rate": 16000}, "int16/int32/uint8"),
        (torch.ones(100, dtype=torch.int64), {"sample_rate": 16000}, "int16/int32/uint8"),
        (torch.ones(100, dtype=torch.complex64), {"sample_rate": 16000}, "complex64"),
        ([0.1, 0.2, 0.3], {"sample_rate": 16000}, "numpy array or a torch tensor"),
    ],
)
def test_bad_arrays(audio: object, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        prepare_audio(audio, **kwargs)


# ------------------------------------------------------------------------------------ arrays, channels


def _stereo(rate: int = 22050, seconds: float = 0.3) -> np.ndarray:
    return np.stack([_sine(440, rate, seconds, 0.3), _sine(1000, rate, seconds, 0.6)])


def test_array_layouts_agree() -> None:
    x = _stereo()
    a = prepare_audio(x, 22050)
    torch.testing.assert_close(prepare_audio(np.ascontiguousarray(x.T), 22050), a, atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x.T, 22050), a, atol=0, rtol=0)  # non-contiguous view
    torch.testing.assert_close(prepare_audio(torch.from_numpy(x), np.int64(22050)), a, atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x.astype(np.float64), 22050.0), a, atol=0, rtol=0)
    mono = prepare_audio(x[0], 22050, normalize=False)
    assert mono.shape == a.shape == (math.ceil(16000 * x.shape[1] / 22050),)
    torch.testing.assert_close(mono, resample(torch.from_numpy(x[0]), 22050), atol=0, rtol=0)
    assert a.dtype == torch.float32 and a.ndim == 1


def test_int_arrays_scaled() -> None:
    rng = np.random.default_rng(4)
    i16 = rng.integers(-32768, 32768, size=(2, 1600)).astype(np.int16)
    want = prepare_audio(i16.astype(np.float32) / 32768, 16000, normalize=False)
    torch.testing.assert_close(prepare_audio(i16, 16000, normalize=False), want, atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(i16.T, 16000, normalize=False), want, atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(torch.from_numpy(i16), 16000, normalize=False), want, atol=0, rtol=0)
    i32 = i16.astype(np.int32) * 65536
    torch.testing.assert_close(prepare_audio(i32, 16000, normalize=False), want, atol=0, rtol=0)
    u8 = np.array([0, 128, 255, 64] * 10, dtype=np.uint8)
    torch.testing.assert_close(
        prepare_audio(u8, 16000, normalize=False), torch.tensor([-1.0, 0.0, 127 / 128, -0.5] * 10), atol=0, rtol=0
    )


def test_channel_options() -> None:
    x = _stereo(16000)
    t = torch.from_numpy(x)
    torch.testing.assert_close(prepare_audio(x, 16000, channel="mix", normalize=False), t.mean(0), atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x, 16000, channel="first", normalize=False), t[0], atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x, 16000, channel=1, normalize=False), t[1], atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x, 16000, channel=-1, normalize=False), t[1], atol=0, rtol=0)
    torch.testing.assert_close(prepare_audio(x.T, 16000, channel=1, normalize=False), t[1], atol=0, rtol=0)


def test_dead_left_channel() -> None:
    x = _stereo(44100)
    x[0] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = prepare_audio(x, 44100)  # "mix" hears the right channel
    assert float(out.std()) > 0.9
    with pytest.warns(UserWarning, match="channel='mix'"):
        silent = prepare_audio(x, 44100, channel="first")
    assert torch.equal(silent, torch.zeros_like(silent))


@pytest.mark.parametrize("value", [0.0, 0.25])
def test_silence_warns_and_gives_zeros(value: float) -> None:
    x = np.full(44100 // 4, value, dtype=np.float32)
    with pytest.warns(UserWarning, match="digital silence"):
        out = prepare_audio(x, 44100)
    assert out.shape == (4000,) and torch.equal(out, torch.zeros(4000))
    with pytest.warns(UserWarning, match="digital silence"):
        prepare_audio(np.zeros((2, 1000), dtype=np.int16), 16000)


def test_mix_cancelling_channels_warns() -> None:
    x = _stereo(16000)
    x[1] = -x[0]
    with pytest.warns(UserWarning, match="cancel out"):
        out = prepare_audio(x, 16000)
    assert torch.equal(out, torch.zeros_like(out))
    assert float(prepare_audio(x, 16000, channel="first").std()) > 0.9


def test_does_not_alias_caller_tensor() -> None:
    x = torch.randn(1000)
    out = prepare_audio(x, 16000, normalize=False)
    out += 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("layout", ["1d", "channels_first", "channels_last"])
def test_never_writes_or_aliases_caller_array(layout: str, normalize: bool) -> None:
    # float32 mono at 16 kHz is read without a copy: the result must still be a buffer of its own.
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    arr = {"1d": x, "channels_first": x[None], "channels_last": x[:, None]}[layout]
    before = arr.copy()
    out = prepare_audio(arr, 16000, normalize=normalize)
    np.testing.assert_array_equal(arr, before)
    assert not np.may_share_memory(out.numpy(), arr)
    want = normalize_waveform(torch.from_numpy(x.copy())) if normalize else torch.from_numpy(x)
    assert torch.equal(out, want)


def test_read_only_array_without_warning() -> None:
    x = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    x.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = prepare_audio(x, 16000)
    assert torch.equal(out, normalize_waveform(torch.from_numpy(x.copy())))


def test_normalized_output_stats() -> None:
    out = prepare_audio(_stereo(48000), 48000)
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std(unbiased=False)) - 1) < 1e-3


# ----------------------------------------------------------------- files are reduced to one channel as they decode


@pytest.mark.parametrize("channel", ["mix", "first", 1, -1])
def test_file_reduced_while_decoding_equals_the_decoded_array(tmp_path: Path, channel: str | int) -> None:
    # Three channels over many decode chunks: the file path (one channel kept per chunk, then joined) must give
    # exactly what the whole decoded array gives.
    rng = np.random.default_rng(7)
    data = rng.integers(-20000, 20000, size=(3, 44100 * 3 + 17)).astype(np.int16)
    _write_wav_int16(tmp_path / "three.wav", data, 44100)
    decoded, rate = decode_audio(tmp_path / "three.wav")
    for normalize in (True, False):
        from_file = prepare_audio(tmp_path / "three.wav", channel=channel, normalize=normalize)
        from_array = prepare_audio(decoded, rate, channel=channel, normalize=normalize)
        # (resampled in pieces as it decodes: the convolutions' summation order may differ in the last bits)
        torch.testing.assert_close(from_file, from_array, rtol=0, atol=2e-6)


def test_file_with_a_bad_channel_index_fails_before_decoding_it_all(tmp_path: Path) -> None:
    _write_wav_int16(tmp_path / "s.wav", np.zeros((2, 48000), dtype=np.int16) + 5, 16000)
    with pytest.raises(InputError, match="channel=2 is out of range for audio with 2 channel"):
        prepare_audio(tmp_path / "s.wav", channel=2)


def test_file_nan_in_an_unused_channel_is_still_an_error(tmp_path: Path) -> None:
    data = np.stack([_sine(300, 16000, 2.0), _sine(500, 16000, 2.0)])
    data[1, 20000:20003] = np.nan
    data[1, 30000] = np.inf
    _encode_audio(tmp_path / "f.wav", "pcm_f32le", 16000, data)
    with pytest.raises(InputError, match=r"NaN/inf samples at 4 positions \(3 NaN, 1 inf\)"):
        prepare_audio(tmp_path / "f.wav", channel="first")


def test_file_whose_channels_cancel_warns_with_the_hint(tmp_path: Path) -> None:
    left = (_sine(300, 16000, 2.0) * 20000).astype(np.int16)
    _write_wav_int16(tmp_path / "c.wav", np.stack([left, -left]), 16000)
    with pytest.warns(UserWarning, match="cancel out"):
        out = prepare_audio(tmp_path / "c.wav")
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000, 96000, 22254, 16000])
@pytest.mark.parametrize("piece", [1, 999, 8192, 10**6])
def test_streaming_resample_equals_resample(rate: int, piece: int) -> None:
    # Files are resampled piece by piece as they decode; the result must be `resample` of the whole signal, for
    # rates on the dense path, the sparse path (22254 Hz) and no resampling at all, with pieces of any size.
    x = torch.randn(37_003 if piece > 1 else 2_001, generator=torch.Generator().manual_seed(rate))
    stream = _StreamingResample(rate)
    stream.batch_samples = 4096  # several convolutions, and pieces both smaller and larger than a batch
    for start in range(0, x.shape[0], piece):
        stream.add(x[start : start + piece])
    out, whole = stream.result(), resample(x, rate)
    assert out.shape == whole.shape
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-6)
