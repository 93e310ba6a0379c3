"""Counting uprobes over raw syscalls (no dependencies): an independent tally of CUDA calls.

The GPU check's optional third opinion (`torch_workload.py --self-probe`): the workload puts one
counting eBPF program on each CUDA entry point it cares about in the libcuda/libcudart it maps,
just before its measured region, and reads the counters just after. The byte layouts are the
ones `../shared/tools/gpu_probe.py` and `bpfmini.py` used on the GPU machine (kernel 6.18-gpu,
verified 2026-11-22): an array map of one u64, a program that adds one to it, a perf-event
uprobe with the program attached.

The uprobes are system-wide (pid -1): the counts cover every process that calls these functions
in that file while they are attached. On the check machine only the workload does.

x86-64 only (syscall numbers 321 = bpf, 298 = perf_event_open). Needs root.
"""

import ctypes
import os
import struct

SYS_BPF = 321
SYS_PERF_EVENT_OPEN = 298
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_PROG_LOAD = 5
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_KPROBE = 2
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408

# Entry points counted, by library (basename prefix in /proc/self/maps).
DRIVER_SYMBOLS = [
    "cuLaunchKernel", "cuLaunchKernel_ptsz", "cuLaunchKernelEx", "cuLaunchKernelEx_ptsz",
    "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel_ptsz",
    "cuGraphLaunch", "cuGraphLaunch_ptsz",
    "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync_v2_ptsz", "cuMemcpyDtoH_v2", "cuMemcpyAsync",
    "cuStreamSynchronize", "cuStreamSynchronize_ptsz", "cuCtxSynchronize", "cuEventSynchronize",
]
RUNTIME_SYMBOLS = [
    "cudaLaunchKernel", "cudaLaunchKernel_ptsz", "cudaLaunchKernelExC", "cudaLaunchKernelExC_ptsz",
    "cudaGraphLaunch", "cudaGraphLaunch_ptsz", "cudaMemcpyAsync", "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
]
LIBRARIES = {"libcuda.so": DRIVER_SYMBOLS, "libcudart.so": RUNTIME_SYMBOLS}


def _ins(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def elf_function_offsets(path):
    """FUNC symbols (.symtab and .dynsym) → file offset, as uprobes want them."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"\x7fELF" or d[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", d, 0x28)
    phoff, = struct.unpack_from("<Q", d, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", d, 0x36)
    loads = []
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr = struct.unpack_from("<IIQQ", d, phoff + i * phentsize)
        _filesz, p_memsz = struct.unpack_from("<QQ", d, phoff + i * phentsize + 32)
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_memsz, p_offset))
    secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
    out = {}
    for s in secs:
        if s[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strs = secs[s[6]]
        for j in range(s[5] // 24):
            st_name, st_info, _other, _shndx, st_value, _size = struct.unpack_from(
                "<IBBHQQ", d, s[4] + j * 24)
            if st_value == 0 or (st_info & 0xF) != 2:  # STT_FUNC
                continue
            n0 = strs[4] + st_name
            name = d[n0:d.index(b"\0", n0)].decode(errors="replace")
            for va, msz, off in loads:
                if va <= st_value < va + msz:
                    out.setdefault(name, st_value - va + off)
    return out


def mapped_libraries(pid="self"):
    """Basename prefix (`libcuda.so`, `libcudart.so`) → path mapped by the process."""
    found = {}
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            path = parts[5]
            base = os.path.basename(path)
            for prefix in LIBRARIES:
                if base.startswith(prefix + ".") or base == prefix:
                    found.setdefault(prefix, path)
    return found


class SelfProbe:
    """Counting uprobes on the CUDA libraries this process maps. `attach()`, work, `read()`."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.keep = []  # buffers the kernel holds pointers to while we run
        self.fds = []
        self.probes = []  # (library kind, symbol, map fd)
        self.errors = []
        self.libraries = {}

    def _bpf(self, cmd, attr):
        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        r = self.libc.syscall(SYS_BPF, cmd, buf, len(attr))
        return r, ctypes.get_errno()

    def _map_create(self):
        attr = struct.pack("IIIII", BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0) + b"\0" * 108
        r, e = self._bpf(BPF_MAP_CREATE, attr)
        if r < 0:
            raise OSError(e, f"bpf(MAP_CREATE): {os.strerror(e)}")
        self.fds.append(r)
        return r

    def _prog_load(self, map_fd):
        # r1 = map; *(u32*)(r10-4) = 0; r2 = r10-4; r0 = map_lookup_elem(r1, r2);
        # if r0 == 0 goto out; r1 = 1; lock *(u64*)(r0) += r1; out: r0 = 0; exit
        insns = (_ins(0x18, 1, 1, 0, map_fd) + _ins(0, 0, 0, 0, 0)
                 + _ins(0x62, 10, 0, -4, 0) + _ins(0xBF, 2, 10) + _ins(0x07, 2, 0, 0, -4)
                 + _ins(0x85, 0, 0, 0, 1) + _ins(0x15, 0, 0, 2, 0) + _ins(0xB7, 1, 0, 0, 1)
                 + _ins(0xDB, 0, 1, 0, 0) + _ins(0xB7, 0, 0, 0, 0) + _ins(0x95))
        ib = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(65536)
        self.keep += [ib, lic, log]
        attr = struct.pack("IIQQIIQII16s", BPF_PROG_TYPE_KPROBE, len(insns) // 8,
                           ctypes.addressof(ib), ctypes.addressof(lic), 1, 65536,
                           ctypes.addressof(log), 0, 0, b"gpucheck_cnt") + b"\0" * 48
        r, e = self._bpf(BPF_PROG_LOAD, attr)
        if r < 0:
            raise OSError(e, f"bpf(PROG_LOAD): {os.strerror(e)}: {log.value[:300]!r}")
        self.fds.append(r)
        return r

    def _attach(self, path, offset, prog_fd):
        uprobe_type = int(open("/sys/bus/event_source/devices/uprobe/type").read())
        p = ctypes.create_string_buffer(path.encode())
        self.keep.append(p)
        # perf_event_attr: type, size=128, config=0 (entry), ..., config1=path, config2=offset
        attr = struct.pack("IIQQQQQIIQQ", uprobe_type, 128, 0, 0, 0, 0, 0, 0, 0,
                           ctypes.addressof(p), offset) + b"\0" * 48
        ab = ctypes.create_string_buffer(attr, len(attr))
        self.keep.append(ab)
        fd = self.libc.syscall(SYS_PERF_EVENT_OPEN, ab, -1, 0, -1, 0)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"perf_event_open(uprobe): {os.strerror(e)}")
        self.fds.append(fd)
        if self.libc.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd) < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"PERF_EVENT_IOC_SET_BPF: {os.strerror(e)}")
        self.libc.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)

    def attach(self):
        """Attaches what it can; per-symbol failures land in `errors`. Returns probes attached."""
        self.libraries = mapped_libraries()
        for prefix, symbols in LIBRARIES.items():
            path = self.libraries.get(prefix)
            if path is None:
                self.errors.append(f"{prefix} not mapped")
                continue
            try:
                offsets = elf_function_offsets(path)
            except (OSError, ValueError, struct.error) as e:
                self.errors.append(f"{path}: {e}")
                continue
            for sym in symbols:
                if sym not in offsets:
                    continue
                try:
                    m = self._map_create()
                    prog = self._prog_load(m)
                    self._attach(path, offsets[sym], prog)
                    self.probes.append((prefix, sym, m))
                except OSError as e:
                    self.errors.append(f"{sym}: {e.strerror}")
        return len(self.probes)

    def _map_read(self, fd):
        key = ctypes.c_uint32(0)
        val = ctypes.c_uint64(0)
        attr = struct.pack("IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0)
        attr += b"\0" * 96
        r, e = self._bpf(BPF_MAP_LOOKUP_ELEM, attr)
        return val.value if r == 0 else None

    def read(self):
        """{"libcuda.so": {"cuLaunchKernel": n, ...}, ...}: calls since `attach()`."""
        out = {}
        for prefix, sym, m in self.probes:
            out.setdefault(prefix, {})[sym] = self._map_read(m)
        return out

    def close(self):
        for fd in reversed(self.fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.probes = []
