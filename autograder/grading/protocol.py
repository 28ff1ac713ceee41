"""The one contract between the grader and the sandboxed worker: frames of plain data, and the checks.

Two things live here, and nowhere else:

* **Frames.** What crosses the pipe between the grader (trusted, never runs student code) and the worker
  (runs the student's cells, in the sandbox) is plain data: a JSON header and raw tensor bytes. Never
  pickle, never ``torch.load``. :func:`read_frame` checks every length, dtype and shape against limits
  before it allocates anything, so a hostile worker's forged or oversized frame is a
  :class:`ProtocolError`, not a crash or a memory bomb in the grader.

      frame  = MAGIC (4 bytes) | header length (u32, big-endian) | payload length (u64) | header | payload
      header = JSON {"body": <value>, "tensors": [[dtype, shape, offset, nbytes], ...]}
      value  = null | bool | int | float | str | [value...] | {str: value}
               | {"__tuple__": [value...]} | {"__tensor__": index into "tensors"}

* **GradedCheck.** The class every graded check implements. Its methods are split by where they run:
  ``secret``, ``request`` and ``verdict`` in the grader; ``probe`` in the worker, after the student's
  cells have run, on exactly the request the grader sent. A check that is timed (``timed = True``)
  is measured by the grader itself (:mod:`autograder.grading.grader`); the worker only calls.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

import torch

MAGIC = b"UPCK"
_PREFIX = struct.Struct(">4sIQ")
HEADER_LIMIT = 1 << 20          # 1 MiB of JSON
PAYLOAD_LIMIT = 256 << 20       # 256 MiB of tensor bytes in one frame
MAX_DIMS = 8

DTYPES = {name: getattr(torch, name) for name in
          ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class ProtocolError(Exception):
    """A frame that is not what the protocol allows (forged, oversized, truncated, not plain data)."""


class ChannelClosed(ProtocolError):
    """The other side closed the channel (the worker ended)."""


class ChannelTimeout(Exception):
    """No whole frame arrived before the deadline."""


# --------------------------------------------------------------------------
# Encoding


def encode(value) -> bytes:
    """One frame holding ``value`` (plain data and torch tensors only; anything else is a ValueError)."""
    tensors: list[list] = []
    chunks: list[bytes] = []
    offset = 0

    def enc(v, depth=0):
        nonlocal offset
        if depth > 32:
            raise ValueError("value nested too deeply")
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is torch.Tensor or type(v) is torch.nn.Parameter:
            t = v.detach().to("cpu").contiguous()
            if t.dtype not in _DTYPE_NAMES:
                raise ValueError(f"dtype {t.dtype} cannot cross the channel")
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            tensors.append([_DTYPE_NAMES[t.dtype], list(t.shape), offset, len(raw)])
            chunks.append(raw)
            offset += len(raw)
            return {"__tensor__": len(tensors) - 1}
        if type(v) is tuple:
            return {"__tuple__": [enc(x, depth + 1) for x in v]}
        if type(v) is list:
            return [enc(x, depth + 1) for x in v]
        if type(v) is dict:
            if any(type(k) is not str for k in v) or "__tensor__" in v or "__tuple__" in v:
                raise ValueError("dict keys must be plain strings other than the protocol's markers")
            return {k: enc(x, depth + 1) for k, x in v.items()}
        raise ValueError(f"a {type(v).__name__} is not plain data")

    body = enc(value)
    header = json.dumps({"body": body, "tensors": tensors}, allow_nan=True).encode()
    payload = b"".join(chunks)
    if len(header) > HEADER_LIMIT or len(payload) > PAYLOAD_LIMIT:
        raise ValueError("frame too large")
    return _PREFIX.pack(MAGIC, len(header), len(payload)) + header + payload


def decode(header: bytes, payload: bytes):
    """The value of a frame whose lengths were already checked; every part of it is validated."""
    try:
        doc = json.loads(header)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"the header is not JSON ({type(e).__name__})") from None
    if type(doc) is not dict or set(doc) != {"body", "tensors"} or type(doc["tensors"]) is not list:
        raise ProtocolError("the header is not a frame header")
    tensors = []
    for spec in doc["tensors"]:
        if (type(spec) is not list or len(spec) != 4 or spec[0] not in DTYPES or type(spec[1]) is not list
                or len(spec[1]) > MAX_DIMS or any(type(d) is not int or d < 0 for d in spec[1])
                or type(spec[2]) is not int or type(spec[3]) is not int or spec[2] < 0 or spec[3] < 0):
            raise ProtocolError("a tensor description is malformed")
        dtype, shape, offset, nbytes = DTYPES[spec[0]], spec[1], spec[2], spec[3]
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != nbytes or offset + nbytes > len(payload):
            raise ProtocolError("a tensor's size does not match its bytes")
        if nbytes == 0:
            tensors.append(torch.empty(shape, dtype=dtype))
        else:
            raw = bytearray(payload[offset:offset + nbytes])
            tensors.append(torch.frombuffer(raw, dtype=dtype).reshape(shape))

    def dec(v, depth=0):
        if depth > 64:
            raise ProtocolError("value nested too deeply")
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is list:
            return [dec(x, depth + 1) for x in v]
        if type(v) is dict:
            if set(v) == {"__tensor__"}:
                i = v["__tensor__"]
                if type(i) is not int or not 0 <= i < len(tensors):
                    raise ProtocolError("a tensor reference points nowhere")
                return tensors[i]
            if set(v) == {"__tuple__"}:
                if type(v["__tuple__"]) is not list:
                    raise ProtocolError("a tuple is malformed")
                return tuple(dec(x, depth + 1) for x in v["__tuple__"])
            return {k: dec(x, depth + 1) for k, x in v.items()}
        raise ProtocolError("not plain data")

    try:
        return dec(doc["body"])
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None


# --------------------------------------------------------------------------
# Reading and writing on file descriptors


def write_frame(fd: int, value, deadline: float | None = None) -> None:
    """Write one frame; with a deadline, ``fd`` should be non-blocking (the grader's end of a pipe), so that a
    worker that stops reading cannot stall the grader."""
    data = memoryview(encode(value))
    while data:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            _, writable, _ = select.select([], [fd], [], left)
            if not writable:
                raise ChannelTimeout()
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            raise ChannelClosed("the channel was closed") from None
        data = data[n:]


class FrameReader:
    """Whole frames from a file descriptor, each within a deadline and within the protocol's limits.

    ``header_limit`` and ``payload_limit`` may be lowered by the reader (the grader) for a given channel.
    """

    def __init__(self, fd: int, header_limit: int = HEADER_LIMIT, payload_limit: int = PAYLOAD_LIMIT):
        self.fd = fd
        self.header_limit, self.payload_limit = header_limit, payload_limit

    def _exactly(self, n: int, deadline: float | None) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout()
                ready, _, _ = select.select([self.fd], [], [], left)
                if not ready:
                    raise ChannelTimeout()
            chunk = os.read(self.fd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise ChannelClosed("the channel was closed")
            buf += chunk
        return bytes(buf)

    def read(self, deadline: float | None = None):
        """The value of the next whole frame, by the deadline; a ProtocolError if it breaks the limits."""
        magic, hlen, plen = _PREFIX.unpack(self._exactly(_PREFIX.size, deadline))
        if magic != MAGIC:
            raise ProtocolError("a frame does not start with the protocol's marker")
        if hlen > self.header_limit or plen > self.payload_limit:
            raise ProtocolError(f"a frame is larger than allowed ({hlen} + {plen} bytes)")
        header = self._exactly(hlen, deadline)
        payload = self._exactly(plen, deadline) if plen else b""
        return decode(header, payload)


# --------------------------------------------------------------------------
# What a learner's result becomes before it crosses (worker side)


def plain(value, depth: int = 0):
    """A learner's return value as plain data: exact tensor copies, numbers, strings, short tuples and lists;
    anything else only by its type name (a subclass of Tensor included: no object crosses)."""
    if type(value) is torch.Tensor:
        t = value.detach().to("cpu").clone()
        return t if t.dtype in _DTYPE_NAMES else {"__type__": f"Tensor of {t.dtype}"}
    if value is None or type(value) in (int, float, bool, str):
        return value
    if type(value) in (tuple, list) and depth < 2 and len(value) <= 64:
        items = [plain(v, depth + 1) for v in value]
        return tuple(items) if type(value) is tuple else items
    try:
        import numpy as np

        if isinstance(value, np.integer):
            return int(value)
    except ImportError:  # pragma: no cover
        pass
    return {"__type__": type(value).__name__}
