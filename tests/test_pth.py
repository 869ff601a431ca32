#!/usr/bin/env python3
"""The PyTorch checkpoint reader (src/formats/pth.c, zip.c, pickle.c) through
tests/pth_dump, which writes what it reads as safetensors:
- checkpoints torch.save writes (fp32, bf16, f16; OrderedDict, dict, a module's
  state_dict, a Parameter; views with storage offsets and strides, transposes, shared
  storages, 0-d, 1-d and empty tensors; a file named other than consolidated.pth) read back
  bit for bit as torch.load gives them, in their dtype and as fp32;
- archives written by hand here: torch 2.x's layout (archive/, byteorder,
  .data/serialization_id), ZIP64 structures, Python's zipfile (sizes in local headers);
  torch.load reads them too, so the fixtures are real;
- hostile and malformed files each exit 1 with one line naming the file: a pickle that
  would run `touch` through os.system (the file is not created; Python's own unpickler
  does create it, so the fixture is live), other globals, calling opcodes, REDUCE and BUILD
  misuse, unsupported dtypes, truncations at many points, records and directories that do
  not fit, short storages, views past their storage, compressed records, huge counts, deep
  nesting."""
import collections
import json
import os
import pickle
import struct
import subprocess
import sys
import shutil
import tempfile
import zipfile
import zlib

import torch

from tally import Tally, mtp_binary

DUMP = os.path.join(os.path.dirname(mtp_binary()), "tests", "pth_dump")
tally = Tally()
check = tally.check
TMP = tempfile.mkdtemp(prefix="test_pth.")

ST_TYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_st(path):
    """{name: tensor} of a safetensors file, by the format's definition (no library)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        buf = bytearray(data[b:e])
        x = torch.frombuffer(buf, dtype=ST_TYPES[t["dtype"]]) if buf else torch.empty(0, dtype=ST_TYPES[t["dtype"]])
        out[name] = x.reshape(t["shape"])
    return out


def dump(path, f32=False):
    out = os.path.join(TMP, "dump.safetensors")
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([DUMP, path, out] + (["--f32"] if f32 else []), capture_output=True, text=True)
    return r, (read_st(out) if r.returncode == 0 else None)


def same_bits(a, b):
    if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
        return False
    a, b = a.contiguous(), b.contiguous()
    view = torch.int32 if a.dtype == torch.float32 else torch.int16
    return a.numel() == 0 or torch.equal(a.view(view), b.view(view))


def check_reads(path, what, expect=None):
    """path reads back as torch.load (or expect) gives it, bit for bit, natively and as f32."""
    ref = expect if expect is not None else torch.load(path)
    for f32 in (False, True):
        r, got = dump(path, f32)
        if not check(r.returncode == 0, f"{what}: pth_dump{' --f32' if f32 else ''} failed: {r.stderr.strip()}"):
            return
        check(list(got) == list(ref), f"{what}: names {list(got)} != {list(ref)}")
        for k, v in ref.items():
            want = v.detach().float() if f32 else v.detach()
            check(k in got and same_bits(got[k], want), f"{what}: tensor {k} differs{' (f32)' if f32 else ''}")


def refused(path, what, needle=None):
    """pth_dump exits 1 with one line that names path (and holds needle)."""
    r, _ = dump(path)
    lines = r.stderr.strip().splitlines()
    ok = r.returncode == 1 and len(lines) == 1 and path in lines[0] and (needle is None or needle in lines[0])
    return check(ok, f"{what}: want exit 1 and one line naming the file{' with ' + repr(needle) if needle else ''}, "
                     f"got {r.returncode}: {r.stderr.strip()[:300]!r}")


def tpath(name):
    return os.path.join(TMP, name)


# ---- zip and pickle writers for hand-made archives ---------------------------------------

def write_zip(path, records, zip64=False, align=64, descriptors=True):
    """records [(name, bytes)] as a stored zip laid out as torch.save lays it out: local
    headers with zero sizes and a data descriptor after the data, the extra field padded so
    data starts at a multiple of align; sizes and offsets in the central directory (with
    zip64: saturated there, in zip64 extra fields, and a ZIP64 end record and locator)."""
    out, central = bytearray(), []
    for name, data in records:
        nb = name.encode()
        off = len(out)
        pad = (-(off + 30 + len(nb) + 4)) % align
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        crc = zlib.crc32(data)
        flags = 0x08 if descriptors else 0
        lcrc, lsize = (0, 0) if descriptors else (crc, len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, flags, 0, 0, 0x21, lcrc, lsize, lsize,
                           len(nb), len(extra)) + nb + extra + data
        if descriptors:
            out += struct.pack("<IIII", 0x08074B50, crc, len(data), len(data))
        central.append((nb, off, crc, len(data), flags))
    cd_off = len(out)
    for nb, off, crc, size, flags in central:
        if zip64:
            ext, s32, o32 = struct.pack("<HHQQQ", 1, 24, size, size, off), 0xFFFFFFFF, 0xFFFFFFFF
        else:
            ext, s32, o32 = b"", size, off
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20, flags, 0, 0, 0x21, crc, s32, s32,
                           len(nb), len(ext), 0, 0, 0, 0, o32) + nb + ext
    cd_size, n = len(out) - cd_off, len(central)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_off, 0)
    open(path, "wb").write(out)
    return bytes(out)


def records_of(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def refolder(records, folder):
    return [(folder + "/" + n.split("/", 1)[1], d) for n, d in records]


class P:
    """A tiny pickle assembler: each method returns the opcodes for one value."""
    @staticmethod
    def s(x):
        b = x.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    @staticmethod
    def i(x):
        if 0 <= x < 256:
            return b"K" + bytes([x])
        return b"\x8a\x08" + struct.pack("<q", x)

    @staticmethod
    def g(mod, name):
        return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"

    @staticmethod
    def tup(*items):
        return b"(" + b"".join(items) + b"t"

    @staticmethod
    def tensor(key, numel, offset, shape, stride, cls="FloatStorage"):
        pid = P.tup(P.s("storage"), P.g("torch", cls), P.s(key), P.s("cpu"), P.i(numel)) + b"Q"
        hooks = P.g("collections", "OrderedDict") + b")R"
        args = P.tup(pid, P.i(offset), P.tup(*map(P.i, shape)), P.tup(*map(P.i, stride)), b"\x89", hooks)
        return P.g("torch._utils", "_rebuild_tensor_v2") + args + b"R"

    @staticmethod
    def state(items):
        body = b"".join(P.s(k) + v for k, v in items)
        return b"\x80\x02" + P.g("collections", "OrderedDict") + b")R(" + body + b"u."


def archive(path, pkl, storages, folder=None, extra=(), **kw):
    folder = folder or os.path.splitext(os.path.basename(path))[0]
    recs = [(f"{folder}/data.pkl", pkl)] + [(f"{folder}/data/{k}", v) for k, v in storages.items()]
    recs += [(f"{folder}/{n}", d) for n, d in extra] + [(f"{folder}/version", b"3\n")]
    return write_zip(path, recs, **kw)


# ---- what torch.save writes ---------------------------------------------------------------

def good_files():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(6, 8, generator=g)
    d = collections.OrderedDict()
    d["tok_embeddings.weight"] = torch.randn(10, 4, generator=g)
    d["layers.0.attention.wq.weight"] = torch.randn(4, 4, generator=g).to(torch.bfloat16)
    d["norm.weight"] = torch.randn(4, generator=g).to(torch.float16)
    d["scalar"] = torch.tensor(3.5)
    d["empty"] = torch.zeros(0, 4)
    p = tpath("consolidated.pth")
    torch.save(d, p)
    check_reads(p, "fp32/bf16/f16 OrderedDict")

    views = {"a": a, "tail": a[2:], "t": a.t(), "cols": a[:, 3:6], "every2": a[::2, 1::3],
             "perm": a.reshape(2, 3, 8).permute(2, 0, 1), "row": a[4], "elem": a[1, 2],
             "bf_t": a.to(torch.bfloat16).t(), "h_slice": a.to(torch.float16)[1:4, ::2]}
    p = tpath("weights.pt")  # the folder is "weights"
    torch.save(views, p)
    check(zipfile.ZipFile(p).namelist()[0].startswith("weights/"), "torch names the folder after the file")
    check_reads(p, "views and shared storages in a plain dict")
    r, _ = dump(p)
    check(r.returncode == 0, "views: read")

    m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.LayerNorm(5))
    p = tpath("module.pth")
    torch.save(m.state_dict(), p)  # an OrderedDict with a _metadata attribute (BUILD)
    check_reads(p, "a module's state_dict")

    p = tpath("param.pth")
    torch.save({"w": torch.nn.Parameter(torch.randn(3, 2, generator=g))}, p)
    check_reads(p, "a Parameter")

    # the same records in torch 2.x's layout, in ZIP64, and as Python's zipfile writes them
    src = records_of(tpath("weights.pt"))
    ref = torch.load(tpath("weights.pt"))
    recs = refolder(src, "archive")
    recs = [r for r in recs if not r[0].endswith("/version")]
    recs += [("archive/byteorder", b"little"), ("archive/.data/serialization_id", b"1234567890"),
             ("archive/.format_version", b"1"), ("archive/.storage_alignment", b"64"), ("archive/version", b"3\n")]
    for zip64 in (False, True):
        p = tpath(f"torch2{'_zip64' if zip64 else ''}.pth")
        write_zip(p, recs, zip64=zip64)
        loaded = torch.load(p)
        check(all(same_bits(loaded[k], v) for k, v in ref.items()), f"torch.load reads the hand-made {p}")
        check_reads(p, f"torch 2.x layout{' in ZIP64' if zip64 else ''}", ref)
    p = tpath("unaligned.pth")
    write_zip(p, refolder(src, "unaligned"), align=1, descriptors=False)
    check_reads(p, "unaligned records without data descriptors", ref)
    p = tpath("pyzip.pth")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        for n, data in refolder(src, "pyzip"):
            z.writestr(n, data)
    check_reads(p, "Python's zipfile, stored", ref)
    p = tpath("comment.pth")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        z.comment = b"a comment holding PK\x05\x06 and more"
        for n, data in refolder(src, "comment"):
            z.writestr(n, data)
    check_reads(p, "a zip comment that holds the end signature", ref)
    return src


# ---- hostile pickles ---------------------------------------------------------------------

class Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def hostile():
    marker = tpath("PWNED")
    evil = {"w": Evil("touch " + marker)}
    # Python's unpickler runs the command: the fixture is live
    probe = tpath("PROBE")
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())",
                    _w(tpath("probe.pkl"), pickle.dumps({"w": Evil("touch " + probe)}, protocol=2))])
    check(os.path.exists(probe), "the os.system fixture does run under Python's pickle")
    for proto in (2, 4):
        p = tpath(f"evil{proto}.pth")
        archive(p, pickle.dumps(evil, protocol=proto), {})
        refused(p, f"os.system through {'GLOBAL' if proto == 2 else 'STACK_GLOBAL'}", "global 'posix.system' is not allowed")
        check(not os.path.exists(marker), f"os.system (protocol {proto}) ran nothing")

    good_t = P.tensor("0", 4, 0, (4,), (1,))
    store = {"0": struct.pack("<4f", 1, 2, 3, 4)}
    cases = [
        ("builtins eval", P.state([("w", P.g("builtins", "eval") + P.tup(P.s("1")) + b"R")]), "global 'builtins.eval'"),
        ("subprocess", P.state([("w", P.g("subprocess", "Popen"))]), "global 'subprocess.Popen'"),
        ("torch.load", P.state([("w", P.g("torch", "load"))]), "global 'torch.load'"),
        ("_rebuild_qtensor", P.state([("w", P.g("torch._utils", "_rebuild_qtensor"))]), "not allowed"),
        ("REDUCE of a storage class", P.state([("w", P.g("torch", "FloatStorage") + P.tup() + b"R")]),
         "REDUCE of 'torch.FloatStorage'"),
        ("REDUCE of a string", P.state([("w", P.s("os.system") + P.tup(P.s("x")) + b"R")]), "REDUCE calls a str"),
        ("OrderedDict with arguments", P.state([("w", P.g("collections", "OrderedDict") + P.tup(P.tup()) + b"R")]),
         "OrderedDict() with arguments"),
        ("INST", b"\x80\x02(ios\nsystem\n" + P.s("x") + b".", "opcode INST"),
        ("OBJ", b"\x80\x02(" + P.g("collections", "OrderedDict") + b"o.", "opcode OBJ"),
        ("NEWOBJ", b"\x80\x02" + P.g("collections", "OrderedDict") + b")\x81.", "opcode NEWOBJ"),
        ("EXT1", b"\x80\x02\x82\x01.", "opcode EXT1"),
        ("text PERSID", b"\x80\x02P0\n.", "opcode PERSID"),
        ("unknown opcode", b"\x80\x02\xff.", "unknown opcode 0xff"),
        ("BUILD on a tensor", P.state([("w", good_t + b"}" + P.s("a") + P.i(1) + b"sb")]), "BUILD of a tensor"),
        ("BUILD on a list", b"\x80\x02]" + b"}b.", "BUILD of a list"),
        ("BUILD with a (dict, slots) state", P.state([]).rstrip(b".") + P.tup(b"}", b"}") + b"b.", "BUILD of a dict with a tuple"),
        ("hooks not empty", P.state([("w", P.g("torch._utils", "_rebuild_tensor_v2") + P.tup(
            P.tup(P.s("storage"), P.g("torch", "FloatStorage"), P.s("0"), P.s("cpu"), P.i(4)) + b"Q",
            P.i(0), P.tup(P.i(4)), P.tup(P.i(1)), b"\x89", b"}" + P.i(1) + P.s("hook") + b"s") + b"R")]), "hooks"),
        ("top-level list", b"\x80\x02].", "top-level value is a list"),
        ("top-level tensor", b"\x80\x02" + good_t + b".", "top-level value is a tensor"),
        ("a non-tensor value", P.state([("w", good_t), ("n", P.i(3))]), "'n' is an int, not a tensor"),
        ("a non-string key", b"\x80\x02}" + P.i(1) + good_t + b"s.", "not a name"),
        ("a duplicate name", P.state([("w", good_t), ("w", good_t)]), "appears twice"),
        ("LongStorage", P.state([("w", P.tensor("0", 2, 0, (2,), (1,), "LongStorage"))]), "torch.LongStorage (int64)"),
        ("UntypedStorage", P.state([("w", P.tensor("0", 16, 0, (16,), (1,), "UntypedStorage"))]), "UntypedStorage"),
        ("bad persistent id", P.state([("w", P.tup(P.s("storage"), P.s("x")) + b"Q")]), "persistent id"),
        ("storage typed twice", P.state([("w", good_t), ("v", P.tensor("0", 2, 0, (2,), (1,), "HalfStorage"))]),
         "declared twice"),
        ("a short storage record", P.state([("w", P.tensor("0", 5, 0, (5,), (1,)))]), "holds 16 bytes"),
        ("huge numel", P.state([("w", P.tensor("0", 1 << 62, 0, (4,), (1,)))]), "declares"),
        ("a view past its storage", P.state([("w", P.tensor("0", 4, 1, (4,), (1,)))]), "reaches past its storage"),
        ("a view past its storage by stride", P.state([("w", P.tensor("0", 4, 0, (2, 2), (3, 1)))]), "reaches past"),
        ("an overflowing stride", P.state([("w", P.tensor("0", 4, 0, (2, 2), (1 << 62, 1)))]), "reaches past"),
        ("an overlapping view", P.state([("w", P.tensor("0", 4, 0, (1000, 4), (0, 1)))]), "overlapping view"),
        ("a negative dim", P.state([("w", P.tensor("0", 4, 0, (-1,), (1,)))]), "size and stride"),
        ("9 dims", P.state([("w", P.tensor("0", 4, 0, (1,) * 9, (1,) * 9))]), "size and stride"),
        ("a missing storage record", P.state([("w", P.tensor("7", 4, 0, (4,), (1,)))]), "no record"),
        ("a huge memo index", b"\x80\x02}r\xff\xff\xff\xff.", "memo index"),
        ("an unset memo index", b"\x80\x02h\x05.", "memo index not set"),
        ("deep marks", b"\x80\x02" + b"(" * 100000 + b".", "nested deeper"),
        ("stack underflow", b"\x80\x02s.", "stack underflow"),
        ("no STOP", P.state([("w", good_t)])[:-1], "no STOP"),
        ("truncated string", b"\x80\x02X\xff\xff\xff\x7fabc", "truncated"),
        ("protocol 9", b"\x80\x09}.", "protocol"),
        ("long integer", b"\x80\x02\x8a\x09" + b"\x01" * 9 + b".", "wider than 64 bits"),
    ]
    for what, pkl, needle in cases:
        p = tpath("bad.pth")
        archive(p, pkl, store)
        refused(p, what, needle)
    # a million nested tuples: no recursion anywhere, refused as a top-level tuple
    p = tpath("bad.pth")
    archive(p, b"\x80\x02)" + b"\x85" * 1000000 + b".", store)
    refused(p, "a million nested tuples", "top-level value is a tuple")
    # torch.save of what the reader does not take
    for what, obj, needle in [("int64 tensor", {"w": torch.arange(3)}, "LongStorage"),
                              ("float64 tensor", {"w": torch.zeros(2, dtype=torch.float64)}, "DoubleStorage"),
                              ("expanded tensor", {"w": torch.ones(1, 4).expand(100, 4)}, "overlapping view"),
                              ("a list", [torch.ones(2)], "top-level value is a list")]:
        p = tpath("saved.pth")
        torch.save(obj, p)
        refused(p, what, needle)


def _w(path, data):
    open(path, "wb").write(data)
    return path


# ---- malformed containers ------------------------------------------------------------------

def malformed(src):
    good = tpath("m.pth")
    raw = write_zip(good, refolder(src, "m"))
    check_reads(good, "the base of the malformed files", torch.load(tpath("weights.pt")))
    raw64 = write_zip(tpath("m64.pth"), refolder(src, "m64"), zip64=True)
    for name, data in (("m", raw), ("m64", raw64)):
        cuts = sorted(set(list(range(0, len(data), max(1, len(data) // 97))) + list(range(len(data) - 120, len(data)))))
        bad = 0
        for cut in cuts:
            p = tpath(f"{name}.pth")  # the same name, so the folder stays right
            _w(p, data[:cut])
            r, _ = dump(p)
            lines = r.stderr.strip().splitlines()
            bad += not (r.returncode == 1 and len(lines) == 1 and p in lines[0])
        check(bad == 0, f"{name}: {bad} of {len(cuts)} truncations not refused with one line")
    open(tpath("empty.pth"), "wb").close()
    refused(tpath("empty.pth"), "an empty file", "empty file")
    refused(_w(tpath("junk.pth"), b"not a zip" * 100), "not a zip", "no end-of-central-directory")
    refused(TMP, "a directory", "not a regular file")
    refused(tpath("missing.pth"), "a missing file", "cannot open")

    eocd = raw.rindex(b"PK\x05\x06")
    cd = struct.unpack_from("<I", raw, eocd + 16)[0]

    def patched(at, fmt, *values, base=raw, name="m.pth"):
        b = bytearray(base)
        struct.pack_into(fmt, b, at, *values)
        return _w(tpath(name), bytes(b))

    refused(patched(eocd + 16, "<I", len(raw) + 100), "central directory offset past the end", "does not fit")
    refused(patched(eocd + 12, "<I", 0x7FFFFFF0), "central directory size past the end", "does not fit")
    refused(patched(eocd + 8, "<HH", 5000, 5000), "more entries than the directory holds", "do not fit")
    refused(patched(eocd + 8, "<HH", 2, 2), "fewer entries than the directory holds", "bytes after")
    refused(patched(eocd + 8, "<H", 2), "entries on this disk != entries", "multi-disk")
    refused(patched(cd + 42, "<I", len(raw) * 2), "a local header offset outside the file", "outside the records")
    refused(patched(cd + 20, "<I", 1 << 30), "a compressed size that differs", "compressed size")
    b = bytearray(raw)
    struct.pack_into("<II", b, cd + 20, 1 << 30, 1 << 30)
    refused(_w(tpath("m.pth"), bytes(b)), "a record size past the file", "runs past the records")
    refused(patched(cd + 10, "<H", 8), "a deflated record", "compressed")
    refused(patched(cd + 8, "<H", 1), "an encrypted record", "encrypted")
    refused(patched(cd, "<I", 0), "a damaged central entry", "missing or damaged")
    refused(patched(0, "<I", 0), "a damaged local header", "no matching local header")
    # the first record's size reaching into the second's header: two records sharing bytes
    second = raw.index(b"PK\x01\x02", cd + 1)
    lho2 = struct.unpack_from("<I", raw, second + 42)[0]
    data1 = raw.index(b"\x80\x02")  # data.pkl's first bytes
    refused(patched(cd + 20, "<II", lho2 - data1 + 8, lho2 - data1 + 8), "overlapping records", "overlap")
    # ZIP64: a locator pointing nowhere, an end record with absurd counts
    e64 = raw64.rindex(b"PK\x06\x06")
    loc = raw64.rindex(b"PK\x06\x07")
    refused(patched(loc + 8, "<Q", 1 << 60, base=raw64, name="m64.pth"), "a ZIP64 locator outside the file", "ZIP64 end record")
    refused(patched(e64 + 24, "<QQ", 1 << 40, 1 << 40, base=raw64, name="m64.pth"), "a ZIP64 entry count", "do not fit")
    refused(patched(e64 + 40, "<Q", 1 << 62, base=raw64, name="m64.pth"), "a ZIP64 directory size", "does not fit")
    cd64 = struct.unpack_from("<Q", raw64, e64 + 48)[0]
    refused(patched(cd64 + 46 + struct.unpack_from("<H", raw64, cd64 + 28)[0] + 20, "<Q", 1 << 50, base=raw64, name="m64.pth"),
            "a ZIP64 extra offset outside the file", "outside the records")
    refused(patched(cd64 + 30, "<H", 0, base=raw64, name="m64.pth"), "saturated sizes without a zip64 field", None)
    # without the locator, a saturated end record is refused
    b = bytearray(raw64)
    b[loc:loc + 4] = b"XXXX"
    refused(_w(tpath("m64.pth"), bytes(b)), "saturated end record without locator", "no ZIP64 locator")

    p = tpath("deflated.pth")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in refolder(src, "deflated"):
            z.writestr(n, data)
    refused(p, "a deflated archive", "is compressed")
    p = tpath("dup.pth")
    write_zip(p, refolder(src, "dup") + [refolder(src, "dup")[1]])
    refused(p, "a record name twice", "appears twice")
    p = tpath("big.pth")
    write_zip(p, refolder(src, "big") + [("big/byteorder", b"big")])
    refused(p, "a big-endian checkpoint", "big-endian")
    p = tpath("nofolder.pth")
    write_zip(p, [("data.pkl", b"\x80\x02}.")])
    refused(p, "a record in no folder", "in no folder")
    p = tpath("nopkl.pth")
    write_zip(p, [("nopkl/version", b"3\n")])
    refused(p, "no data.pkl", "no record nopkl/data.pkl")


def generator():
    """bench/make_pth.py on a tiny shape: torch.load and torch.save agree with it (--check),
    and the reader gives torch.load's bits, also with its ZIP64 forms forced on."""
    for extra in ([], ["--zip64-from", "20000"]):
        out = tpath("gen")
        r = subprocess.run([sys.executable, "bench/make_pth.py", "--dim", "32", "--n-layers", "3", "--n-heads", "4",
                            "--n-kv-heads", "2", "--vocab", "50", "--n-future", "2", "--dtype", "bf16", "--out", out,
                            "--check"] + extra, capture_output=True, text=True)
        if check(r.returncode == 0, f"make_pth.py {extra}: {r.stderr.strip()[-300:]}"):
            names = list(torch.load(os.path.join(out, "consolidated.pth")))
            check(names[0] == "tok_embeddings.weight" and "layers.1.attention.wq.weight" in names
                  and "extra_heads.0.ffn_norm.weight" in names and names[-1] == "output.weight"
                  and "layers.2.attention.wq.weight" not in names, f"make_pth.py names: {names}")
            check_reads(os.path.join(out, "consolidated.pth"), f"make_pth.py output {extra}")
            check(json.load(open(os.path.join(out, "params.json")))["n_future_tokens"] == 2, "params.json")
        shutil.rmtree(out, ignore_errors=True)


def main():
    if not os.path.exists(DUMP):
        tally.skip(f"{DUMP} not built")
        tally.finish()
    src = good_files()
    hostile()
    malformed(src)
    generator()
    shutil.rmtree(TMP)
    tally.finish()


if __name__ == "__main__":
    main()
