# Probes each rule of the sandbox's seccomp filter from inside; prints NAME=RESULT lines,
# RESULT being "ok" or the errno's name. Arguments are chosen so that, without the filter,
# most calls fail with an error other than EPERM (or succeed): see seccomp_sandbox_test.ts.
import ctypes, errno, mmap, os, platform, socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ARCH = platform.machine()
X86 = ARCH == "x86_64"
NR = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "keyctl": 250 if X86 else 219, "add_key": 248 if X86 else 217,
    "request_key": 249 if X86 else 218, "bpf": 321 if X86 else 280,
    "perf_event_open": 298 if X86 else 241, "userfaultfd": 323 if X86 else 282,
    "mount": 165 if X86 else 40, "umount2": 166 if X86 else 39,
    "pivot_root": 155 if X86 else 41, "unshare": 272 if X86 else 97,
    "setns": 308 if X86 else 268, "clone": 56 if X86 else 220, "clone3": 435,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "open_tree_attr": 467,
    "getpid": 39 if X86 else 172,
}
BAD = ctypes.c_void_p(1)  # an address no call can read


def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *args)
    return ("ok", r) if r >= 0 else (errno.errorcode.get(ctypes.get_errno(), "E?"), r)


def show(name, nr, *args):
    print(f"{name}={call(nr, *args)[0]}", flush=True)


def sock(name, family, kind, proto=0, pair=False):
    try:
        s = (socket.socketpair if pair else socket.socket)(family, kind, proto)
        for x in s if pair else [s]:
            x.close()
        print(f"{name}=ok", flush=True)
    except OSError as e:
        print(f"{name}={errno.errorcode.get(e.errno, 'E?')}", flush=True)


# Socket families.
sock("socket_vsock", 40, socket.SOCK_STREAM)
sock("socket_vsock_dgram", 40, socket.SOCK_DGRAM)
sock("socketpair_vsock", 40, socket.SOCK_STREAM, pair=True)
sock("socket_packet", 17, socket.SOCK_DGRAM)
sock("socket_alg", 38, socket.SOCK_SEQPACKET)
sock("socket_netlink_generic", 16, socket.SOCK_RAW, 16)
sock("socket_netlink_route", 16, socket.SOCK_RAW, 0)
sock("socket_netlink_sock_diag", 16, socket.SOCK_RAW, 4)
sock("socket_unix", 1, socket.SOCK_STREAM)
sock("socketpair_unix", 1, socket.SOCK_STREAM, pair=True)
sock("socket_inet", 2, socket.SOCK_STREAM)
sock("socket_inet6", 10, socket.SOCK_DGRAM)

# io_uring.
params = ctypes.create_string_buffer(120)
show("io_uring_setup", NR["io_uring_setup"], 1, params)
show("io_uring_enter", NR["io_uring_enter"], -1, 0, 0, 0, None, 0)
show("io_uring_register", NR["io_uring_register"], -1, 0, None, 0)

# Keyrings: KEYCTL_GET_KEYRING_ID of the session keyring; add to / search the process keyring.
show("keyctl", NR["keyctl"], 0, -3, 0)
show("add_key", NR["add_key"], b"user", b"probe", b"x", 1, -2)
show("request_key", NR["request_key"], b"user", b"probe-none", None, 0)

# bpf(BPF_OBJ_GET_INFO_BY_FD) with a short, zeroed attr: EBADF/EINVAL without the filter.
attr = ctypes.create_string_buffer(16)
show("bpf", NR["bpf"], 15, attr, 16)
show("perf_event_open", NR["perf_event_open"], BAD, 0, -1, -1, 0)
show("userfaultfd", NR["userfaultfd"], 1)  # UFFD_USER_MODE_ONLY

# Mounts: bad pointers and flags, so the kernel fails before its capability check.
show("mount", NR["mount"], BAD, BAD, BAD, 0, None)
show("umount2", NR["umount2"], b"/", 0x80000000)
show("pivot_root", NR["pivot_root"], BAD, BAD)
show("open_tree", NR["open_tree"], -1, b"/", 0xFFFFFFFF)
show("open_tree_attr", NR["open_tree_attr"], -1, b"/", 0xFFFFFFFF, None, 0)
show("move_mount", NR["move_mount"], -1, b"", -1, b"", 0xFFFFFFFF)
show("fsopen", NR["fsopen"], BAD, 0)
show("fsconfig", NR["fsconfig"], -1, 0xFFFF, None, None, 0)
show("fsmount", NR["fsmount"], -1, 0xFFFFFFFF, 0)
show("fspick", NR["fspick"], -1, BAD, 0xFFFFFFFF)
show("mount_setattr", NR["mount_setattr"], -1, b"/", 0xFFFFFFFF, None, 0)

# Namespaces. clone() first: after a successful unshare(CLONE_NEWUSER) (no filter) the
# process has no uid mapping and could not create one more.
# clone(CLONE_NEWUSER | SIGCHLD): a child, if one starts, exits at once.
ctypes.set_errno(0)
r = libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_ulong(0x10000000 | 17), None, None, None, None)
if r == 0:
    os._exit(0)
if r > 0:
    os.waitpid(r, 0)
print(f"clone_newuser={'ok' if r > 0 else errno.errorcode.get(ctypes.get_errno(), 'E?')}", flush=True)
show("setns", NR["setns"], -1, 0)
show("unshare_user", NR["unshare"], 0x10000000)
show("unshare_net", NR["unshare"], 0x40000000)
show("unshare_files", NR["unshare"], 0x400)  # CLONE_FILES: no namespace, allowed
show("clone3", NR["clone3"], None, 0)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("fork=ok", flush=True)

# Other ABIs on x86-64: x32 (the 0x40000000 bit) and i386 (int 0x80).
if X86:
    show("x32_getpid", 0x40000000 | 39)
    # mov eax, 20 (i386 getpid); int 0x80; ret  -> eax: a pid, or -errno.
    code = bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3])
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    r = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
    print(f"i386_getpid={'ok' if r > 0 else errno.errorcode.get(-r, 'E?')}", flush=True)
print(f"native_getpid={call(NR['getpid'])[0]}", flush=True)
