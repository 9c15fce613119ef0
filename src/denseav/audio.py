"""Audio loading and preprocessing for DenseAV: decode any file FFmpeg reads, resample to 16 kHz, normalise.

Everything here is written against torch and PyAV only. torchaudio is deliberately not a dependency, so
:func:`resample` re-implements ``torchaudio.functional.resample``'s default algorithm (the one the original
DenseAV demo used) with the same float32 arithmetic.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator

import av
import av.error
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError, InputTypeError
from .heap import release_free_memory
from .modeling.audio_encoder import SAMPLE_RATE  # the model's rate, re-exported for callers of this module
from .paths import check_input_file

__all__ = [
    "MAX_DENSE_KERNEL",
    "SAMPLE_RATE",
    "decode_audio",
    "normalize_waveform",
    "prepare_audio",
    "resample",
]


#: Largest dense resampling kernel (``new * (2 * width + orig)`` elements, after dividing both rates by their
#: gcd) that :func:`resample` builds. Above it an equivalent sparse evaluation is used; odd rates such as
#: 22,254 Hz would otherwise need hundreds of millions of kernel elements (seconds and gigabytes).
MAX_DENSE_KERNEL = 4_000_000

# Budget (bytes) for the temporaries of one chunk in the sparse and chunked dense paths, so 10-minute clips stay
# cheap; 32 MB of tensors is ~64 MB of resident memory once the allocator's reuse slack is counted.
_CHUNK_BYTES = 32 * 1024 * 1024

# torchaudio's defaults, which the original DenseAV demo relied on.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99

# Decoded frames are joined into chunks of at least this many samples before they are reduced to one channel and
# checked: per-frame tensor operations cost more than the decoding itself. Small enough that a stereo chunk stays
# under torch's parallel grain size (32768 elements): on a busy machine a parallel op on a small tensor waits for
# its second thread, and 60 minutes of 48 kHz audio are thousands of chunks.
_CHUNK_SAMPLES = 1 << 13

# A 2-D array axis of at most this size is taken to be the channel axis.
_MAX_CHANNELS = 16

AudioLike = str | os.PathLike[str] | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------- decoding

# Integer sample formats: (offset, scale). FFmpeg's swresample converts s16 -> flt as
# x * (1.0f / (1 << 15)), i.e. int -> float32 first, then an exact power-of-two multiply; we do the same.
_INT_FORMATS = {
    "u8": (-128, 2.0**-7),
    "s16": (0, 2.0**-15),
    "s32": (0, 2.0**-31),
    "s64": (0, 2.0**-63),
}


def _frame_to_float32(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """One decoded frame as float32 [channels, samples], scaled like FFmpeg's swresample ->flt."""
    fmt = frame.format
    name = fmt.name.rstrip("p") if fmt.is_planar else fmt.name
    a = frame.to_ndarray()
    # PyAV gives planar formats as [channels, samples] and packed ones as [1, samples * channels].
    if not fmt.is_planar:
        a = a.reshape(-1, channels).T
    if name in _INT_FORMATS:
        offset, scale = _INT_FORMATS[name]
        if offset:
            # u8: subtract in a wider int type so 0..255 does not wrap.
            a = a.astype(np.int16) + offset
        out = a.astype(np.float32)
        out *= np.float32(scale)
        return out
    if name in ("flt", "dbl"):
        # Floats are kept as they are: real mp3/aac decodes overshoot 1.0 and must not be clipped.
        return a.astype(np.float32)
    raise InputError(f"unsupported decoded sample format {fmt.name!r}; convert the file to WAV with ffmpeg first")


def decode_audio(path: str | os.PathLike[str]) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream of any file FFmpeg reads (wav, flac, mp3, ogg, m4a, mp4/mkv/webm audio).

    Returns ``(waveform, sample_rate)``: float32 ``[channels, samples]`` (channels first) and the stream's rate.
    Integer samples are scaled as ``int / 2**(bits-1)`` (``u8`` as ``(x - 128) / 128``), exactly what FFmpeg's
    s16 -> float conversion gives; float samples are returned unchanged (never clipped).

    Raises :class:`~denseav.errors.InputFileNotFoundError` (an InputError and FileNotFoundError) for a missing path and
    :class:`~denseav.errors.InputError` for undecodable files, files without an audio track, or no samples.
    """
    chunks: list[torch.Tensor] = []
    rate = 0
    for chunk, chunk_rate in _decoded_chunks(path):
        chunks.append(torch.from_numpy(chunk))
        rate = chunk_rate
    return _joined(chunks), rate


def _decoded_chunks(path: str | os.PathLike[str]) -> Iterator[tuple[np.ndarray, int]]:
    """The first audio stream in order, in chunks of about `_CHUNK_SAMPLES` (whole frames), each as (float32
    [channels, samples], the stream's rate), with the checks and messages of :func:`decode_audio`."""
    frames: list[np.ndarray] = []
    samples = 0
    for frame, rate in _decoded_frames(path):
        frames.append(frame)
        samples += frame.shape[1]
        if samples >= _CHUNK_SAMPLES:
            yield np.concatenate(frames, axis=1), rate
            frames, samples = [], 0
    if frames:
        yield np.concatenate(frames, axis=1), rate


def _decoded_frames(path: str | os.PathLike[str]) -> Iterator[tuple[np.ndarray, int]]:
    """Each decoded frame of the first audio stream (a few hundred to a few thousand samples) as (float32
    [channels, samples], the stream's rate)."""
    p = check_input_file(path, "audio")
    rate = channels = None
    samples = 0
    try:
        with av.open(str(p), mode="r") as container:
            if not container.streams.audio:
                raise InputError(f"{str(p)!r} has no audio track; pass a file that contains sound")
            for frame in container.decode(container.streams.audio[0]):
                n_ch = len(frame.layout.channels)
                if rate is None:
                    rate, channels = frame.sample_rate, n_ch
                elif (frame.sample_rate, n_ch) != (rate, channels):
                    raise InputError(
                        f"the audio of {str(p)!r} changes from {channels} channel(s) at {rate} Hz to {n_ch} at "
                        f"{frame.sample_rate} Hz mid-stream; convert it first, e.g. "
                        "`ffmpeg -i in -ac 1 -ar 16000 out.wav`"
                    )
                if frame.samples:
                    samples += frame.samples
                    yield _frame_to_float32(frame, n_ch), int(rate)
    except av.error.FFmpegError as e:
        if isinstance(e, PermissionError):
            raise InputError(f"cannot read {str(p)!r}: permission denied; check the file's permissions") from e
        raise InputError(
            f"could not decode audio from {str(p)!r}: {getattr(e, 'strerror', None) or e}; "
            "is it an audio or video file?"
        ) from e
    if not samples:
        raise InputError(f"{str(p)!r} contains no audio samples; pass a file with a non-empty audio track")


def _joined(chunks: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(chunks, -1)`` (emptying `chunks`) without holding the chunks and the result in full at once:
    each chunk is freed once copied, and the freed heap pages go back to the OS every `_CHUNK_BYTES` (chunks are
    small heap blocks; ten minutes of 48 kHz stereo are 230 MB of them)."""
    total = sum(c.shape[-1] for c in chunks)
    out = torch.empty(*chunks[0].shape[:-1], total, dtype=chunks[0].dtype)
    chunks.reverse()  # popped from the end, so each chunk is freed right after its copy
    pos = freed = 0
    while chunks:
        chunk = chunks.pop()
        out[..., pos : pos + chunk.shape[-1]] = chunk
        pos += chunk.shape[-1]
        freed += chunk.numel() * chunk.element_size()
        if freed >= _CHUNK_BYTES or not chunks:
            del chunk
            release_free_memory()
            freed = 0
    return out


# ------------------------------------------------------------------------------------------- resampling


def _kernel_values(
    m: torch.Tensor, phase: torch.Tensor, orig: int, new: int, base_freq: float, lpw: int, dtype: torch.dtype
) -> torch.Tensor:
    """torchaudio's sinc_interp_hann kernel at input offsets ``m`` (relative to the block start) for output
    phases ``phase``; same ops in the same order as torchaudio so the values are bit-identical to its kernel."""
    idx = m.to(dtype) / orig
    t = (-phase).to(dtype) / new + idx
    t *= base_freq
    t = t.clamp_(-lpw, lpw)
    window = torch.cos(t * math.pi / lpw / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels


def _dense_kernel(orig: int, new: int, width: int, base_freq: float, lpw: int, dtype: torch.dtype) -> torch.Tensor:
    # Exactly torchaudio's _get_sinc_resample_kernel with dtype=waveform.dtype: [new, 1, 2 * width + orig].
    # Kept as a literal copy (same tensor shapes too) rather than via _kernel_values: torch's sin/cos may round
    # the last elements of a tensor differently from the vectorised bulk, so shapes matter for bit-exactness.
    idx = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new + idx
    t *= base_freq
    t = t.clamp_(-lpw, lpw)
    window = torch.cos(t * math.pi / lpw / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels


def _segment(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``x[:, lo:hi]`` of the zero-extended signal (``lo`` may be negative, ``hi`` past the end); a view when it
    lies inside ``x``. Used instead of padding the whole signal, which would copy a 10-minute clip."""
    length = x.shape[-1]
    a, b = min(max(lo, 0), length), max(min(hi, length), 0)
    seg = x[:, a:b] if a < b else x[:, :0]
    if lo < a or hi > b:
        seg = F.pad(seg, (a - lo, hi - max(a, b)))
    return seg


def _resample_dense(x: torch.Tensor, orig: int, new: int, width: int, kernel: torch.Tensor, n_out: int) -> torch.Tensor:
    # torchaudio: conv1d(pad(x, (width, width + orig)), kernel, stride=orig) -> [n, new, blocks], interleaved.
    # Block b reads padded samples [b * orig, b * orig + ksize), i.e. x[b * orig - width : ...]. Long signals are
    # split into block ranges (conv1d's im2col buffer is ~ksize floats per block) and written straight into the
    # output; each block only sees its own window, so the split changes memory, not results.
    n = x.shape[0]
    ksize = kernel.shape[-1]
    n_blocks = -(-n_out // new)
    per_block = max(1, n * (ksize + orig + 2 * new) * x.element_size())
    step = max(1, _CHUNK_BYTES // per_block)
    out = torch.empty(n, n_out, dtype=x.dtype, device=x.device)
    for b0 in range(0, n_blocks, step):
        b1 = min(n_blocks, b0 + step)
        seg = _segment(x, b0 * orig - width, (b1 - 1) * orig + ksize - width)
        y = F.conv1d(seg[:, None], kernel, stride=orig).transpose(1, 2).reshape(n, -1)
        j1 = min(n_out, b1 * new)
        out[:, b0 * new : j1] = y[:, : j1 - b0 * new]
    return out


def _resample_sparse(
    x: torch.Tensor, orig: int, new: int, width: int, base_freq: float, lpw: int, n_out: int
) -> torch.Tensor:
    n = x.shape[0]
    dtype = x.dtype
    # Output j = b * new + p reads inputs b * orig + m. Only offsets with |m / orig - p / new| < lpw / base_freq
    # are inside the sinc's support; every other dense tap is clamped to |t| = lpw, where window * sinc ~ 1e-22.
    radius = lpw * orig / base_freq
    phases = torch.arange(new, dtype=torch.int64, device=x.device)
    # First offset per phase: floor(p * orig / new - radius), minus one tap of slack for float64 rounding.
    m_lo = torch.floor(phases.double() * orig / new - radius).long() - 1
    m_lo = m_lo.clamp_(min=-width)
    taps = math.ceil(2 * radius) + 3
    m = m_lo[:, None] + torch.arange(taps, dtype=torch.int64, device=x.device)  # [new, taps]
    table = _kernel_values(m, phases[:, None], orig, new, base_freq, lpw, dtype)
    # Taps outside the dense kernel's range [-width, width + orig) do not exist in torchaudio's kernel.
    table = table.masked_fill_((m < -width) | (m >= width + orig), 0.0)

    out = torch.empty(n, n_out, dtype=dtype, device=x.device)
    # Working set per output of a chunk: int64 gather index and kernel row per tap, gathered samples per tap and
    # row (multiplied in place), plus a few int64 scalars (j, p, start).
    per_out = taps * (8 + x.element_size() * (1 + n)) + 48
    chunk = max(1, _CHUNK_BYTES // per_out)
    tap_range = torch.arange(taps, dtype=torch.int64, device=x.device)
    for j0 in range(0, n_out, chunk):
        j = torch.arange(j0, min(n_out, j0 + chunk), dtype=torch.int64, device=x.device)
        p = j % new
        start = torch.div(j, new, rounding_mode="floor") * orig + m_lo[p]  # first input index per output
        lo, hi = int(start.min()), int(start.max()) + taps
        # Zero outside the signal, as torchaudio's padding.
        seg = _segment(x, lo, hi)
        idx = ((start - lo)[:, None] + tap_range).view(-1)  # [chunk * taps]
        g = seg.index_select(1, idx).view(n, len(j), taps)
        g.mul_(table[p])
        out[:, j0 : j0 + len(j)] = g.sum(-1)
    return out


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int = SAMPLE_RATE,
    *,
    max_dense_kernel: int | None = None,
) -> torch.Tensor:
    """Resample along the last axis like ``torchaudio.functional.resample`` with its defaults
    (``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``).

    The kernel is computed with torchaudio's float arithmetic in the waveform's dtype, so the dense path gives
    torchaudio's result (up to conv1d summation order on very long inputs, which are processed in chunks).
    When the dense kernel (``new * (2 * width + orig)`` elements with both rates divided by their gcd) would
    exceed ``max_dense_kernel`` (default :data:`MAX_DENSE_KERNEL`; ``0`` forces the sparse path), an
    equivalent sparse evaluation is used: per output phase only the ~``2 * width + 3`` taps inside the sinc's
    support are computed (with the same float arithmetic) and applied by gathering, in bounded-memory chunks.
    It differs from torchaudio only by float summation order and by dropping the taps torchaudio clamps to the
    window's edge (each ~1e-22 of the input), i.e. by ~1e-7 relative. Same rates return the input unchanged.

    Args:
        waveform: floating-point tensor ``[..., samples]``.
        orig_freq: the waveform's sample rate in Hz (positive int).
        new_freq: the target rate in Hz (default 16 kHz).
        max_dense_kernel: dense-kernel size limit in elements; ``None`` means :data:`MAX_DENSE_KERNEL`.

    Returns:
        ``[..., ceil(new_freq * samples / orig_freq)]`` in the waveform's dtype.
    """
    orig_freq = _check_rate(orig_freq, "orig_freq")
    new_freq = _check_rate(new_freq, "new_freq")
    if not torch.is_tensor(waveform) or not waveform.is_floating_point():
        raise InputError(
            f"resample needs a floating-point torch tensor, got {type(waveform).__name__}"
            f"{'' if not torch.is_tensor(waveform) else ' of dtype ' + str(waveform.dtype)}; convert it with .float()"
        )
    if orig_freq == new_freq:
        return waveform
    orig, new, width, base_freq = _plan(orig_freq, new_freq)
    lpw = _LOWPASS_FILTER_WIDTH
    shape = waveform.shape
    x = waveform.reshape(-1, shape[-1])
    n_out = _output_length(orig, new, x.shape[-1])
    if _is_dense(orig, new, width, max_dense_kernel):
        kernel = _dense_kernel(orig, new, width, base_freq, lpw, x.dtype).to(x.device)
        y = _resample_dense(x, orig, new, width, kernel, n_out)
    else:
        y = _resample_sparse(x, orig, new, width, base_freq, lpw, n_out)
    return y.reshape((*shape[:-1], y.shape[-1]))


def _plan(orig_freq: int, new_freq: int) -> tuple[int, int, int, float]:
    """(orig, new) divided by their gcd, the kernel's half-width in input samples, and the cutoff, as torchaudio."""
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    base_freq = min(orig, new) * _ROLLOFF
    return orig, new, math.ceil(_LOWPASS_FILTER_WIDTH * orig / base_freq), base_freq


def _output_length(orig: int, new: int, length: int) -> int:
    # torchaudio: torch.ceil(torch.as_tensor(new * length / orig)) on the same Python float.
    return math.ceil(new * length / orig)


def _is_dense(orig: int, new: int, width: int, max_dense_kernel: int | None = None) -> bool:
    limit = MAX_DENSE_KERNEL if max_dense_kernel is None else max_dense_kernel
    return new * (2 * width + orig) <= limit


class _StreamingResample:
    """`resample` of a mono float32 signal that arrives in pieces (`add`), for files: each output block is
    computed as soon as its input window has arrived, so only the output and a short input tail are held, not
    the whole signal at the source rate (ten minutes of 48 kHz: 115 MB). Same kernel, same blocks as
    `_resample_dense`; rates that need the sparse path (odd rates) and equal rates keep the pieces and resample
    them joined at the end."""

    # Input samples gathered before a convolution runs (about a second): fewer, larger calls.
    batch_samples = 1 << 16

    def __init__(self, orig_freq: int, new_freq: int = SAMPLE_RATE) -> None:
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.orig, self.new, self.width, base_freq = _plan(orig_freq, new_freq)
        self.kernel = None
        if orig_freq != new_freq and _is_dense(self.orig, self.new, self.width):
            self.kernel = _dense_kernel(
                self.orig, self.new, self.width, base_freq, _LOWPASS_FILTER_WIDTH, torch.float32
            )
        # Input not yet consumed; it starts at input index blocks_done * orig - width (torchaudio's left padding).
        self.pending: list[torch.Tensor] = [torch.zeros(self.width)] if self.kernel is not None else []
        self.pending_samples = sum(p.shape[0] for p in self.pending)
        self.length = self.blocks_done = 0
        self.out: list[torch.Tensor] = []

    def add(self, piece: torch.Tensor) -> None:
        self.pending.append(piece)
        self.pending_samples += piece.shape[0]
        self.length += piece.shape[0]
        if self.kernel is not None and self.pending_samples >= self.batch_samples + self.kernel.shape[-1]:
            blocks = (self.pending_samples - self.kernel.shape[-1]) // self.orig + 1  # those whose input is all here
            self._convolve(blocks, torch.cat(self.pending))

    def result(self) -> torch.Tensor:
        """The resampled signal (every piece added); the object is spent."""
        if self.kernel is None:
            return resample(_joined(self.pending), self.orig_freq, self.new_freq)
        n_out = _output_length(self.orig, self.new, self.length)
        remaining = -(-n_out // self.new) - self.blocks_done
        if remaining > 0:  # the last blocks read torchaudio's right padding: zeros
            needed = (remaining - 1) * self.orig + self.kernel.shape[-1]
            tail = torch.cat(self.pending)
            self._convolve(remaining, F.pad(tail, (0, max(0, needed - tail.shape[0]))))
        out = _joined(self.out)
        return out[:n_out] if out.shape[0] > n_out else out

    def _convolve(self, blocks: int, signal: torch.Tensor) -> None:
        """Output blocks [blocks_done, blocks_done + blocks) from `signal` (the pending input), then keep only
        the input the next blocks read."""
        assert self.kernel is not None
        used = signal[: (blocks - 1) * self.orig + self.kernel.shape[-1]]
        y = F.conv1d(used[None, None], self.kernel, stride=self.orig)  # [1, new, blocks]
        self.out.append(y[0].transpose(0, 1).reshape(-1))
        rest = signal[blocks * self.orig :].clone()
        self.pending, self.pending_samples = [rest], rest.shape[0]
        self.blocks_done += blocks


# --------------------------------------------------------------------------------------- normalisation


def normalize_waveform_(x: torch.Tensor) -> torch.Tensor:
    """In-place :func:`normalize_waveform`."""
    mean = x.mean(dim=-1, keepdim=True)
    std = torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + 1e-7)
    return x.sub_(mean).div_(std)


def normalize_waveform(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the last axis, as HuggingFace's Wav2Vec2 feature extractor does:
    ``(x - mean) / sqrt(var + 1e-7)`` with the population variance. Digital silence gives zeros (the 1e-7
    keeps the division finite)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean).div_(torch.sqrt(var + 1e-7))  # one new buffer, not two: same values


# ------------------------------------------------------------------------------------------- preparing


def _check_rate(rate: object, name: str) -> int:
    if isinstance(rate, (bool, np.bool_)):
        raise InputError(f"{name} must be a positive int in Hz, got {rate!r}; pass e.g. {name}=44100")
    if isinstance(rate, (float, np.floating)) and float(rate).is_integer():
        rate = int(rate)  # 44100.0 is a fine way of saying 44100
    value = int(rate) if isinstance(rate, (int, np.integer)) else None
    if value is None or value <= 0:
        raise InputError(f"{name} must be a positive int in Hz, got {rate!r}; pass e.g. {name}=44100")
    return value


# Integer array dtypes accepted by prepare_audio: (offset, scale), as in decode_audio.
_INT_ARRAY_SCALES = {
    torch.uint8: (-128, 2.0**-7),
    torch.int8: (0, 2.0**-7),
    torch.int16: (0, 2.0**-15),
    torch.int32: (0, 2.0**-31),
}


def _array_to_float32(audio: object) -> torch.Tensor:
    """numpy array / tensor -> float32 tensor (integers scaled to [-1, 1) as FFmpeg does); any other type the
    caller passed is refused here with a message that says what to pass instead."""
    if isinstance(audio, np.ndarray):
        if audio.dtype == np.bool_ or audio.dtype.kind not in "iuf":
            raise InputError(
                f"audio array has dtype {audio.dtype}; pass float samples (any range) or int16/int32/uint8 PCM"
            )
        # int64 / uint16 / uint32 have no agreed full scale (int64 is also numpy's default for plain ints).
        if (audio.dtype.kind == "i" and audio.dtype.itemsize > 4) or (
            audio.dtype.kind == "u" and audio.dtype.itemsize > 1
        ):
            raise InputError(
                f"audio array has dtype {audio.dtype}, whose full scale is ambiguous; pass int16/int32/uint8 PCM "
                "or float samples (e.g. x.astype(np.float32) / 32768 for 16-bit audio)"
            )
        # Native byte order and contiguity so torch.from_numpy accepts it; float64 is narrowed here. A float32
        # array is used as it is (no copy): prepare_audio never writes into the caller's memory.
        a = np.ascontiguousarray(audio)
        if a.dtype.kind == "f":
            a = a.astype(np.float32, copy=False)
        elif not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # a read-only array is fine: nothing here writes into it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(a)
    elif isinstance(audio, torch.Tensor):
        t = audio.detach()
    else:
        hint = (
            "pass its path (e.g. f.name)"
            if hasattr(audio, "read")
            else "e.g. wrap a list in numpy.asarray(..., dtype=numpy.float32)"
        )
        raise InputTypeError(
            f"audio must be a file path, a numpy array or a torch tensor, got {type(audio).__name__}; {hint}"
        )

    if t.dtype in _INT_ARRAY_SCALES:
        offset, scale = _INT_ARRAY_SCALES[t.dtype]
        if offset:
            t = t.to(torch.int16) + offset
        return t.to(torch.float32) * scale
    if t.is_floating_point():
        return t.to(torch.float32)
    raise InputError(f"audio tensor has dtype {t.dtype}; pass float samples (any range) or int16/int32/uint8 PCM")


def _to_channels_first(x: torch.Tensor) -> torch.Tensor:
    """1-D [N] or 2-D [C, N] / [N, C] -> [C, N]."""
    if x.ndim == 1:
        return x[None]
    if x.ndim != 2:
        raise InputError(f"audio array has shape {tuple(x.shape)}; pass 1-D [samples] or 2-D [channels, samples]")
    a, b = x.shape
    if a <= _MAX_CHANNELS and b > a:
        return x
    if b <= _MAX_CHANNELS and a > b:
        return x.T  # [samples, channels], e.g. soundfile's layout
    raise InputError(
        f"cannot tell the channel axis of audio with shape {tuple(x.shape)} (the channel axis must have at most "
        f"{_MAX_CHANNELS} entries and be the shorter one); pass [channels, samples]"
    )


def _select_channel(x: torch.Tensor, channel: str | int) -> torch.Tensor:
    """[C, N] -> [N] by channel choice."""
    n_ch = x.shape[0]
    if isinstance(channel, str):
        if channel == "mix":
            return x[0] if n_ch == 1 else x.mean(dim=0)  # the mean of one channel is that channel: no copy
        if channel == "first":
            return x[0]
        raise InputError(f"channel must be 'mix', 'first' or a channel index, got {channel!r}")
    if isinstance(channel, (bool, np.bool_)) or not isinstance(channel, (int, np.integer)):
        raise InputError(f"channel must be 'mix', 'first' or a channel index, got {channel!r}")
    if not -n_ch <= int(channel) < n_ch:
        raise InputError(
            f"channel={int(channel)} is out of range for audio with {n_ch} channel(s); "
            f"pass 0..{n_ch - 1}, 'first' or 'mix'"
        )
    return x[int(channel)]


def prepare_audio(
    audio: AudioLike,
    sample_rate: int | None = None,
    *,
    channel: str | int = "mix",
    normalize: bool = True,
) -> torch.Tensor:
    """Turn a file or an array into DenseAV's audio input: float32 ``[N]`` at 16 kHz.

    Args:
        audio: a path to anything FFmpeg decodes (audio, or a video's audio track), or a numpy array / torch
            tensor, 1-D ``[samples]`` or 2-D ``[channels, samples]`` / ``[samples, channels]`` (the axis with at
            most 16 entries that is shorter than the other is the channel axis). Integer arrays (int16, int32,
            uint8, int8) are scaled to [-1, 1) as FFmpeg does; floats are used as they are.
        sample_rate: the array's rate in Hz; required for arrays. For paths the file's rate is used; passing a
            different rate with a path is an error.
        channel: ``"mix"`` (default) averages the channels, so a dead channel cannot silently win;
            ``"first"`` takes channel 0 as the original DenseAV demo did; an int picks that channel.
        normalize: apply :func:`normalize_waveform` (zero mean, unit variance), as the model expects.

    Order: pick/mix channels, resample to 16 kHz (:func:`resample`), normalise. Warns (UserWarning) when the clip
    is digital silence; with ``normalize=True`` the result is then all zeros. No minimum length is enforced here.

    Raises:
        InputError: empty audio, NaN/inf samples, a missing or bad ``sample_rate``, an unreadable layout, dtype
            or channel, or any decoding problem (:func:`decode_audio`).
    """
    mono, rate, silent, what = _load_mono(audio, sample_rate, channel)
    if silent:  # the hint looks at every channel: read them again (a file is decoded again), only in this case
        channels = _load_channels(audio, sample_rate)[0]
        _warn_silence(channels, _select_channel(channels, channel), channel, what)
    out = resample(mono, rate, SAMPLE_RATE)
    # A long clip is copied at most once here: a float32 mono 16 kHz array is read in place, and the one new
    # buffer (resampled, mixed or normalised) is then normalised in place.
    if normalize:
        # Silence normalises to exactly zero (not to float noise from mean rounding, nor resampling edge ripple).
        if silent:
            out = torch.zeros_like(out)
        elif out is mono or _shares_memory(out, audio):
            out = normalize_waveform(out)  # never modify the caller's data
        else:
            out = normalize_waveform_(out)  # in place: no extra copies of a long clip
    out = out.contiguous()
    if _shares_memory(out, audio):
        out = out.clone()  # never hand back a view of the caller's data
    return out


def _shares_memory(x: torch.Tensor, source: object) -> bool:
    """Whether `x` lies in the memory of the caller's `source` (a tensor or a numpy array; a path never)."""
    if isinstance(source, torch.Tensor):
        return x.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()
    if isinstance(source, np.ndarray) and x.device.type == "cpu":
        return bool(np.may_share_memory(x.detach().numpy(), source))  # overlapping address ranges
    return False


def _load_mono(audio: AudioLike, sample_rate: int | None, channel: str | int) -> tuple[torch.Tensor, int, bool, str]:
    """(the chosen or mixed channel as float32 [samples], its rate, whether it is digital silence, how messages
    name it), every channel checked for NaN/inf.

    A file is reduced to that channel and resampled to 16 kHz frame by frame as it decodes, so a long file never
    exists with all its channels, nor at its own rate (ten minutes of 48 kHz stereo: 230 MB; at 16 kHz mono:
    38 MB). Silence is judged on the file's own samples, before resampling, as for arrays."""
    if not isinstance(audio, (str, os.PathLike)):
        x, rate, what = _load_channels(audio, sample_rate)
        _check_finite(x)
        mono = _select_channel(x, channel)
        return mono, rate, bool(mono.max() == mono.min()), what
    resampler: _StreamingResample | None = None
    rate, bad, nan = 0, 0, 0
    low, high = math.inf, -math.inf
    for chunk, rate in _decoded_chunks(audio):
        x = torch.from_numpy(chunk)
        chunk_bad, chunk_nan = _non_finite_counts(x)
        bad, nan = bad + chunk_bad, nan + chunk_nan
        piece = _select_channel(x, channel)
        if not chunk_bad:  # (a NaN/inf file is refused below)
            low, high = min(low, float(piece.min())), max(high, float(piece.max()))
        resampler = resampler or _StreamingResample(rate)
        # A picked channel is a view that would keep the frame's other channels alive: keep a copy instead.
        resampler.add(piece.clone() if x.shape[0] > 1 and _shares_memory(piece, x) else piece)
    _check_file_rate(audio, sample_rate, rate)
    if bad:
        raise _non_finite_error(bad, nan)
    assert resampler is not None  # _decoded_chunks raises for a file without samples
    return resampler.result(), SAMPLE_RATE, low == high, f"{os.fspath(audio)!r}"


def _check_file_rate(path: str | os.PathLike[str], sample_rate: int | None, file_rate: int) -> None:
    if sample_rate is not None and _check_rate(sample_rate, "sample_rate") != file_rate:
        raise InputError(
            f"sample_rate={sample_rate} was passed with a file whose audio is {file_rate} Hz; "
            "leave sample_rate out for files (their own rate is used)"
        )


def _load_channels(audio: AudioLike, sample_rate: int | None) -> tuple[torch.Tensor, int, str]:
    """(float32 [channels, samples], its rate, how messages name it) from a file or an array."""
    if isinstance(audio, (str, os.PathLike)):
        wav, file_rate = decode_audio(audio)
        _check_file_rate(audio, sample_rate, file_rate)
        return wav, file_rate, f"{os.fspath(audio)!r}"
    x = _array_to_float32(audio)  # checks the type first: an open file is not "an array without a rate"
    if sample_rate is None:
        raise InputError(
            "sample_rate is required with an array (the rate it was recorded or decoded at); "
            "pass e.g. sample_rate=44100"
        )
    rate = _check_rate(sample_rate, "sample_rate")
    if x.numel() == 0:
        raise InputError(f"audio is empty (shape {tuple(x.shape)}); pass at least one sample")
    return _to_channels_first(x), rate, "the audio"


def _non_finite_counts(x: torch.Tensor) -> tuple[int, int]:
    """(NaN/inf samples, of which NaN)."""
    if bool(torch.isfinite(x).all()):
        return 0, 0
    return int((~torch.isfinite(x)).sum()), int(torch.isnan(x).sum())


def _check_finite(x: torch.Tensor) -> None:
    bad, nan = _non_finite_counts(x)
    if bad:
        raise _non_finite_error(bad, nan)


def _non_finite_error(n_bad: int, n_nan: int) -> InputError:
    return InputError(
        f"audio contains NaN/inf samples at {n_bad} positions ({n_nan} NaN, {n_bad - n_nan} inf); "
        "clean the signal (e.g. numpy.nan_to_num or drop the broken segment) before passing it"
    )


def _warn_silence(x: torch.Tensor, mono: torch.Tensor, channel: str | int, what: str) -> None:
    hint = ""
    if x.shape[0] > 1 and not bool((x == x.flatten()[0]).all()):
        if channel == "mix":
            hint = " (the channels cancel out when mixed; try channel='first' or a channel index)"
        else:
            hint = f" (other channels are not; channel={channel!r} picked a silent one, try channel='mix')"
    warnings.warn(
        f"{what} is digital silence (every sample equals {float(mono[0]):g}){hint}; "
        "grounding silence gives meaningless heatmaps",
        UserWarning,
        stacklevel=3,
    )
