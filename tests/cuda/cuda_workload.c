/*
 * cuda-workload: a program that uses the CUDA driver and runtime APIs a known number of times,
 * for the CUDA end-to-end tests. It links nothing CUDA at build time: like a Python framework
 * it dlopen()s libcuda.so.1 and libcudart.so.12 (the stand-ins built from stub_cuda.c and
 * stub_cudart.c), so a profiler has to find them in /proc/<pid>/maps, possibly after it
 * attached.
 *
 * cuda-workload-static (built with -DSTATIC_RUNTIME, stub_cudart.c linked in): the runtime is
 * part of the executable, as when a program links libcudart_static.a (nvcc's default). The
 * workload calls the runtime functions linked into itself and does not load libcudart.so.12;
 * the runtime part still dlopen()s libcuda.so.1, as the real static runtime does. A profiler
 * has to find the runtime's launch entries in the executable.
 *
 * Usage: cuda-workload [OPTIONS] [main | bench CALLS | bench-runtime CALLS]
 *   --lib-dir DIR         load DIR/libcuda.so.1 and DIR/libcudart.so.12 (default:
 *                         $STUB_CUDA_LIB_DIR, else the bare sonames through LD_LIBRARY_PATH;
 *                         cuda-workload-static loads the driver only)
 *   --start-delay-ms MS   sleep this long before loading the libraries (a profiler attached
 *                         at start-up sees them appear later)
 *   --load-settle-ms MS   sleep this long after loading them, before the first CUDA call (the
 *                         time a profiler gets to notice a library mapped while it watches)
 *   --wait-for-probes MS  after loading them (with --wait-for-signal: after the signal), wait
 *                         (at most MS) until every CUDA function this program calls has a uprobe: its first instruction in memory differs
 *                         from the library file's (the kernel writes an int3 there when a uprobe
 *                         is registered), then 200 ms more (return probes a profiler registers
 *                         after the entry ones). Makes "the profiler attached before the first
 *                         call" a condition rather than a race; the ground truth says how long
 *                         it waited and whether it gave up.
 *   --wait-for-signal     after set-up (libraries loaded, kernel names looked up, one warm-up
 *                         runtime launch per host stub, which looks up its CUkernel, and one
 *                         allocation) print "ready" and wait for SIGUSR1; everything counted
 *                         happens after it. The warm-up allocation is freed after the signal.
 *   --launch-us US, --sync-us US, --copy-us US
 *                         host time inside each launch / sync / blocking copy (sets
 *                         STUB_CUDA_LAUNCH_US, STUB_CUDA_SYNC_US, STUB_CUDA_COPY_US before the
 *                         driver is loaded)
 *   --truth FILE          write the ground-truth JSON line to FILE (default: stdout)
 *
 * Modes:
 *   main                  the scenario below (the default)
 *   bench CALLS           CALLS cuLaunchKernel calls in a tight loop, stub durations forced to 0;
 *                         prints the mean ns per call
 *   bench-runtime CALLS   the same through cudaLaunchKernel (runtime → driver)
 *
 * The ground truth (one JSON line) holds the handles the profiler will see (functions,
 * streams), the paths loaded and the stub libraries' own per-symbol call counters for the
 * counted phase. The tests assert against their own copy of the constants below
 * (tests/src/cuda/scenario.rs) and check these counters against them too.
 *
 * Build: cc -O2 -g -rdynamic -o cuda-workload cuda_workload.c -ldl
 *        cc -O2 -g -rdynamic -DSTATIC_RUNTIME -o cuda-workload-static cuda_workload.c \
 *           stub_cudart.c -ldl
 * (-rdynamic puts the host stubs in .dynsym, as a runtime-linked CUDA program has them.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- the scenario (keep in sync with tests/src/cuda/scenario.rs) ---- */
/* Kernels, with the name each is looked up by. */
#define NAME_VECTOR_ADD "_Z10vector_addPfPKfi"   /* vector_add(float*, float const*, int) */
#define NAME_RELU "relu_kernel"                  /* plain (extern "C") */
#define NAME_REDUCE "_Z14reduce_rowwisePKfPfi"   /* reduce_rowwise(float const*, float*, int) */
#define NAME_GRID_SYNC "_ZN6kernel9grid_syncEPii" /* kernel::grid_sync(int*, int) */
#define NAME_MISSING "missing_kernel"            /* a lookup that fails (CUDA_ERROR_NOT_FOUND) */
#define LONG_NAME_PREFIX "very_long_kernel_name_" /* then "0123456789" repeated */
#define LONG_NAME_LEN 600                          /* longer than the profiler copies */
/* Runtime kernels: host stubs below, named like nvcc names them (the device name). */
#define NAME_SCALE "_Z12scale_valuesPff"          /* scale_values(float*, float) */
#define NAME_GELU "_Z8gelu_fwdPKfPfi"             /* gelu_fwd(float const*, float*, int) */

/* Launches: kernel, API, count, grid, block, dynamic shared memory, stream. */
#define N_PTSZ 20        /* vector_add, cuLaunchKernel_ptsz, (8,1,1) (128,1,1) 0, default stream */
#define N_VECTOR_ADD 300 /* vector_add, cuLaunchKernel, (4,2,1) (256,1,1) 1024, S1 (after ptsz) */
#define N_RELU 200       /* relu_kernel, cuLaunchKernel, (16,1,1) (128,2,1) 0, S2 */
#define N_REDUCE 40      /* reduce_rowwise, cuLaunchKernelEx, (32,1,1) (64,1,1) 2048, S2 */
#define N_GRID_SYNC 1    /* grid_sync, cuLaunchCooperativeKernel, (2,1,1) (32,1,1) 512, S1 */
#define N_LONG 3         /* the long name, cuLaunchKernel, (1,1,1) (32,1,1) 0, S1 */
#define N_SCALE 50       /* scale_values, cudaLaunchKernel, (64,1,1) (512,1,1) 0, S3 */
#define N_GELU 10        /* gelu_fwd, cudaLaunchKernelExC, (128,1,1) (256,1,1) 4096, S3 */
#define N_GRAPH 5        /* cuGraphLaunch on S4 */
/* Synchronization. */
#define N_SYNC_S1 4 /* cuStreamSynchronize(S1), every N_VECTOR_ADD / N_SYNC_S1 iterations */
#define N_SYNC_S2 6 /* cuStreamSynchronize(S2), every N_VECTOR_ADD / N_SYNC_S2 iterations */
#define N_CTX_SYNC 1
#define N_EVENT_SYNC 1
/* Copies: calls × bytes. */
#define HTOD_CALLS 10
#define HTOD_BYTES 4096
#define HTOD_ASYNC_CALLS 4 /* on S1 */
#define HTOD_ASYNC_BYTES 1000
#define COPY2D_HTOD_CALLS 2 /* cuMemcpy2D_v2, host → device */
#define COPY2D_HTOD_WIDTH 640
#define COPY2D_HTOD_HEIGHT 3
#define DTOH_CALLS 6
#define DTOH_BYTES 8192
#define DTOH_ASYNC_CALLS 3 /* on S2 */
#define DTOH_ASYNC_BYTES 3000
#define COPY2D_DTOH_CALLS 1 /* cuMemcpy2D_v2, device → host */
#define COPY2D_DTOH_WIDTH 100
#define COPY2D_DTOH_HEIGHT 7
#define DTOD_CALLS 5
#define DTOD_BYTES 65536
#define DTOD_ASYNC_CALLS 2 /* on S2 */
#define DTOD_ASYNC_BYTES 12345
#define PEER_CALLS 2
#define PEER_BYTES 777
#define UNIFIED_CALLS 3 /* cuMemcpy */
#define UNIFIED_BYTES 555
#define UNIFIED_ASYNC_CALLS 2 /* cuMemcpyAsync, on S1 */
#define UNIFIED_ASYNC_BYTES 333
/* Memory. */
#define ALLOC_CALLS 8 /* cuMemAlloc_v2 of (i + 1) × ALLOC_UNIT bytes */
#define ALLOC_UNIT 4096
#define ALLOC_FREED 5 /* the first ones, with cuMemFree_v2 */
#define PITCH_WIDTH 1024 /* cuMemAllocPitch_v2: pitch = width (a multiple of 512); freed */
#define PITCH_HEIGHT 10
#define MANAGED_BYTES 50000 /* cuMemAllocManaged; never freed */
#define ASYNC_ALLOC_CALLS 2 /* cuMemAllocAsync on S1; the first freed with cuMemFreeAsync */
#define ASYNC_ALLOC_BYTES 3000
#define WARMUP_ALLOC_BYTES 65536 /* --wait-for-signal: allocated before, freed after */

/* ---- CUDA types (cuda.h, cuda_runtime.h) ---- */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent, *CUgraph, *CUgraphExec,
    *CUarray;
typedef struct {
    unsigned int x, y, z;
} dim3;

typedef enum { MEM_HOST = 1, MEM_DEVICE = 2, MEM_ARRAY = 3, MEM_UNIFIED = 4 } CUmemorytype;

typedef struct {
    size_t srcXInBytes, srcY;
    CUmemorytype srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    CUarray srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    CUmemorytype dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    CUarray dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;
_Static_assert(offsetof(CUDA_MEMCPY2D, WidthInBytes) == 112, "CUDA_MEMCPY2D layout");

typedef struct {
    unsigned int gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    CUstream hStream;
    void *attrs;
    unsigned int numAttrs;
} CUlaunchConfig;

typedef struct {
    dim3 gridDim, blockDim;
    size_t dynamicSmemBytes;
    CUstream stream;
    void *attrs;
    unsigned int numAttrs;
} cudaLaunchConfig_t;

#ifdef STATIC_RUNTIME
/* stub_cudart.c, linked into this executable (like libcudart_static.a). */
int cudaLaunchKernel(const void *, dim3, dim3, void **, size_t, CUstream);
int cudaLaunchKernelExC(const cudaLaunchConfig_t *, const void *, void **);
void stubRegisterFunction(const void *, const char *);
int stubCudartCounters(const char **, unsigned long *, int);
#endif

/* ---- the libraries, through dlsym (the runtime's linked in with STATIC_RUNTIME) ---- */
static struct {
    CUresult (*init)(unsigned);
    CUresult (*device_get)(CUdevice *, int);
    CUresult (*ctx_create)(CUcontext *, unsigned, CUdevice);
    CUresult (*module_load_data)(CUmodule *, const void *);
    CUresult (*stream_create)(CUstream *, unsigned);
    CUresult (*event_create)(CUevent *, unsigned);
    CUresult (*event_record)(CUevent, CUstream);
    CUresult (*graph_create)(CUgraph *, unsigned);
    CUresult (*graph_instantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*module_get_function)(CUfunction *, CUmodule, const char *);
    CUresult (*launch_kernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);
    CUresult (*launch_kernel_ptsz)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, unsigned, CUstream, void **, void **);
    CUresult (*launch_kernel_ex)(const CUlaunchConfig *, CUfunction, void **, void **);
    CUresult (*launch_cooperative)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, CUstream, void **);
    CUresult (*graph_launch)(CUgraphExec, CUstream);
    CUresult (*memcpy_htod)(CUdeviceptr, const void *, size_t);
    CUresult (*memcpy_dtoh)(void *, CUdeviceptr, size_t);
    CUresult (*memcpy_dtod)(CUdeviceptr, CUdeviceptr, size_t);
    CUresult (*memcpy_htod_async)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*memcpy_dtoh_async)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*memcpy_dtod_async)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*memcpy_unified)(CUdeviceptr, CUdeviceptr, size_t);
    CUresult (*memcpy_unified_async)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*memcpy_peer)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t);
    CUresult (*memcpy_2d)(const CUDA_MEMCPY2D *);
    CUresult (*mem_alloc)(CUdeviceptr *, size_t);
    CUresult (*mem_alloc_pitch)(CUdeviceptr *, size_t *, size_t, size_t, unsigned);
    CUresult (*mem_alloc_managed)(CUdeviceptr *, size_t, unsigned);
    CUresult (*mem_alloc_async)(CUdeviceptr *, size_t, CUstream);
    CUresult (*mem_free)(CUdeviceptr);
    CUresult (*mem_free_async)(CUdeviceptr, CUstream);
    CUresult (*stream_sync)(CUstream);
    CUresult (*ctx_sync)(void);
    CUresult (*event_sync)(CUevent);
    int (*counters)(const char **, unsigned long *, int);
    /* runtime */
    void (*register_function)(const void *, const char *);
    int (*launch)(const void *, dim3, dim3, void **, size_t, CUstream);
    int (*launch_ex)(const cudaLaunchConfig_t *, const void *, void **);
    int (*rt_counters)(const char **, unsigned long *, int);
} cu;

static char driver_path[4096], runtime_path[4096];
static void *driver_lib, *runtime_lib;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda-workload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(CUresult r, const char *what) {
    if (r != 0)
        die("%s returned %d", what, r);
}

#define CHECK(call) check((call), #call)

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Host time of every call in the counted phase, per API family (the profiler's names), as the
 * caller sees it: the same preemptions and probe costs the profiler sees, so its means can be
 * compared with these even on a busy machine. */
enum family {
    F_LAUNCH, F_LAUNCH_EX, F_COOPERATIVE, F_GRAPH, F_HTOD, F_DTOH, F_DTOD, F_HTOD_ASYNC,
    F_DTOH_ASYNC, F_DTOD_ASYNC, F_MEMCPY, F_MEMCPY_ASYNC, F_PEER, F_2D, F_ALLOC, F_ALLOC_PITCH,
    F_ALLOC_MANAGED, F_ALLOC_ASYNC, F_FREE, F_FREE_ASYNC, F_STREAM_SYNC, F_CTX_SYNC,
    F_EVENT_SYNC, F_COUNT
};
static const char *const family_names[F_COUNT] = {
    "cuLaunchKernel", "cuLaunchKernelEx", "cuLaunchCooperativeKernel", "cuGraphLaunch",
    "cuMemcpyHtoD", "cuMemcpyDtoH", "cuMemcpyDtoD", "cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync", "cuMemcpy", "cuMemcpyAsync", "cuMemcpyPeer", "cuMemcpy2D",
    "cuMemAlloc", "cuMemAllocPitch", "cuMemAllocManaged", "cuMemAllocAsync", "cuMemFree",
    "cuMemFreeAsync", "cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize",
};
#define MAX_SAMPLES 1024
static uint64_t samples[F_COUNT][MAX_SAMPLES];
static int n_samples[F_COUNT];

static void record(enum family f, uint64_t ns) {
    if (n_samples[f] < MAX_SAMPLES)
        samples[f][n_samples[f]++] = ns;
}

/* A counted call: timed, then checked. */
#define T(family, call)                                                                        \
    do {                                                                                       \
        uint64_t t0_ = now_ns();                                                               \
        CUresult r_ = (call);                                                                  \
        record(family, now_ns() - t0_);                                                        \
        check(r_, #call);                                                                      \
    } while (0)

static void *sym(void *lib, const char *path, const char *name) {
    void *p = dlsym(lib, name);
    if (!p)
        die("%s has no %s", path, name);
    return p;
}

static void load_libraries(const char *lib_dir) {
    if (lib_dir && *lib_dir) {
        snprintf(driver_path, sizeof driver_path, "%s/libcuda.so.1", lib_dir);
        snprintf(runtime_path, sizeof runtime_path, "%s/libcudart.so.12", lib_dir);
        /* The runtime finds the driver by this path (by soname otherwise). */
        setenv("STUB_CUDA_DRIVER", driver_path, 1);
    } else {
        snprintf(driver_path, sizeof driver_path, "libcuda.so.1");
        snprintf(runtime_path, sizeof runtime_path, "libcudart.so.12");
    }
    void *d = driver_lib = dlopen(driver_path, RTLD_NOW | RTLD_GLOBAL);
    if (!d)
        die("dlopen: %s", dlerror());
#ifdef STATIC_RUNTIME
    /* The runtime is this executable: its path, and the main program's handle (for
     * wait_for_probes, which looks the runtime's functions up by name). */
    ssize_t len = readlink("/proc/self/exe", runtime_path, sizeof runtime_path - 1);
    if (len <= 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    runtime_path[len] = 0;
    if (!(runtime_lib = dlopen(NULL, RTLD_NOW)))
        die("dlopen(NULL): %s", dlerror());
    cu.register_function = stubRegisterFunction;
    cu.launch = cudaLaunchKernel;
    cu.launch_ex = cudaLaunchKernelExC;
    cu.rt_counters = stubCudartCounters;
#else
    void *r = runtime_lib = dlopen(runtime_path, RTLD_NOW | RTLD_GLOBAL);
    if (!r)
        die("dlopen: %s", dlerror());
#endif
#define D(field, name) *(void **)&cu.field = sym(d, driver_path, name)
#define R(field, name) *(void **)&cu.field = sym(r, runtime_path, name)
    D(init, "cuInit");
    D(device_get, "cuDeviceGet");
    D(ctx_create, "cuCtxCreate_v2");
    D(module_load_data, "cuModuleLoadData");
    D(stream_create, "cuStreamCreate");
    D(event_create, "cuEventCreate");
    D(event_record, "cuEventRecord");
    D(graph_create, "cuGraphCreate");
    D(graph_instantiate, "cuGraphInstantiateWithFlags");
    D(module_get_function, "cuModuleGetFunction");
    D(launch_kernel, "cuLaunchKernel");
    D(launch_kernel_ptsz, "cuLaunchKernel_ptsz");
    D(launch_kernel_ex, "cuLaunchKernelEx");
    D(launch_cooperative, "cuLaunchCooperativeKernel");
    D(graph_launch, "cuGraphLaunch");
    D(memcpy_htod, "cuMemcpyHtoD_v2");
    D(memcpy_dtoh, "cuMemcpyDtoH_v2");
    D(memcpy_dtod, "cuMemcpyDtoD_v2");
    D(memcpy_htod_async, "cuMemcpyHtoDAsync_v2");
    D(memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2");
    D(memcpy_dtod_async, "cuMemcpyDtoDAsync_v2");
    D(memcpy_unified, "cuMemcpy");
    D(memcpy_unified_async, "cuMemcpyAsync");
    D(memcpy_peer, "cuMemcpyPeer");
    D(memcpy_2d, "cuMemcpy2D_v2");
    D(mem_alloc, "cuMemAlloc_v2");
    D(mem_alloc_pitch, "cuMemAllocPitch_v2");
    D(mem_alloc_managed, "cuMemAllocManaged");
    D(mem_alloc_async, "cuMemAllocAsync");
    D(mem_free, "cuMemFree_v2");
    D(mem_free_async, "cuMemFreeAsync");
    D(stream_sync, "cuStreamSynchronize");
    D(ctx_sync, "cuCtxSynchronize");
    D(event_sync, "cuEventSynchronize");
    D(counters, "stubCudaCounters");
#ifndef STATIC_RUNTIME
    R(register_function, "stubRegisterFunction");
    R(launch, "cudaLaunchKernel");
    R(launch_ex, "cudaLaunchKernelExC");
    R(rt_counters, "stubCudartCounters");
#endif
#undef D
#undef R
}

/* ---- waiting for uprobes ---- */
/* The functions the counted phase calls (the runtime's calls into the driver included). */
static const char *const probed_driver[] = {
    "cuModuleGetFunction", "cuLibraryGetKernel", "cuKernelGetFunction", "cuLaunchKernel",
    "cuLaunchKernel_ptsz", "cuLaunchKernelEx", "cuLaunchCooperativeKernel", "cuGraphLaunch",
    "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoD_v2", "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2", "cuMemcpy", "cuMemcpyAsync", "cuMemcpyPeer",
    "cuMemcpy2D_v2", "cuMemAlloc_v2", "cuMemAllocPitch_v2", "cuMemAllocManaged",
    "cuMemAllocAsync", "cuMemFree_v2", "cuMemFreeAsync", "cuStreamSynchronize",
    "cuCtxSynchronize", "cuEventSynchronize",
};
static const char *const probed_runtime[] = {"cudaLaunchKernel", "cudaLaunchKernelExC"};

#define MAX_WATCHED 64

static struct watched {
    const char *name;
    const unsigned char *code; /* the function in memory */
    unsigned char file_byte;   /* its first byte in the library file */
} watched[MAX_WATCHED];
static int n_watched;

struct segment_query {
    uintptr_t base, vaddr;
    long offset;
};

static int find_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct segment_query *q = data;
    if (info->dlpi_addr != q->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && q->vaddr >= ph->p_vaddr &&
            q->vaddr < ph->p_vaddr + ph->p_filesz) {
            q->offset = (long)(ph->p_offset + (q->vaddr - ph->p_vaddr));
            return 1;
        }
    }
    return 0;
}

/* Records `name`'s address in `lib` and its first byte as the file has it. */
static void watch(void *lib, const char *path, const char *name) {
    if (n_watched == MAX_WATCHED)
        die("too many functions to watch");
    void *fn = sym(lib, path, name);
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1(fn, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
        die("dladdr %s failed", name);
    struct segment_query q = {map->l_addr, (uintptr_t)fn - map->l_addr, -1};
    dl_iterate_phdr(find_segment, &q);
    if (q.offset < 0)
        die("%s: no segment holds it", name);
    /* The main program (a statically linked runtime) has no name in the link map. */
    const char *file = map->l_name[0] ? map->l_name : "/proc/self/exe";
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    unsigned char byte;
    if (fd < 0 || pread(fd, &byte, 1, q.offset) != 1)
        die("reading %s from %s: %s", name, file, strerror(errno));
    close(fd);
    watched[n_watched++] = (struct watched){name, fn, byte};
}

/* Waits until every watched function is patched; returns the ms waited, or -1 on timeout
 * (naming the first unpatched function on stderr). */
static long wait_for_probes(void *driver, void *runtime, long timeout_ms) {
    for (size_t i = 0; i < sizeof probed_driver / sizeof *probed_driver; i++)
        watch(driver, driver_path, probed_driver[i]);
    for (size_t i = 0; i < sizeof probed_runtime / sizeof *probed_runtime; i++)
        watch(runtime, runtime_path, probed_runtime[i]);
    uint64_t start = now_ns();
    for (;;) {
        const struct watched *unpatched = NULL;
        for (int i = 0; i < n_watched && !unpatched; i++)
            if (*(const volatile unsigned char *)watched[i].code == watched[i].file_byte)
                unpatched = &watched[i];
        long waited = (long)((now_ns() - start) / 1000000);
        if (!unpatched) {
            struct timespec grace = {0, 200 * 1000000};
            nanosleep(&grace, NULL);
            return waited;
        }
        if (waited >= timeout_ms) {
            fprintf(stderr, "cuda-workload: no uprobe on %s after %ld ms; going on\n",
                    unpatched->name, waited);
            return -1;
        }
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

/* ---- host stubs: what nvcc generates for `kernel<<<grid, block, shmem, stream>>>(args)` ---- */
static struct {
    dim3 grid, block;
    size_t shmem;
    CUstream stream;
} launch_config; /* __cudaPushCallConfiguration */

static void configure(dim3 grid, dim3 block, size_t shmem, CUstream stream) {
    launch_config.grid = grid;
    launch_config.block = block;
    launch_config.shmem = shmem;
    launch_config.stream = stream;
}

#define HOST_STUB __attribute__((noinline, used, visibility("default")))

HOST_STUB void scale_values_stub(float *data, float factor) __asm__(NAME_SCALE);
void scale_values_stub(float *data, float factor) {
    void *args[] = {&data, &factor};
    int err = cu.launch((const void *)scale_values_stub, launch_config.grid, launch_config.block,
                        args, launch_config.shmem, launch_config.stream);
    if (err)
        die("cudaLaunchKernel(scale_values) returned %d", err);
}

HOST_STUB void gelu_fwd_stub(const float *in, float *out, int n) __asm__(NAME_GELU);
void gelu_fwd_stub(const float *in, float *out, int n) {
    void *args[] = {&in, &out, &n};
    cudaLaunchConfig_t config = {
        .gridDim = launch_config.grid,
        .blockDim = launch_config.block,
        .dynamicSmemBytes = launch_config.shmem,
        .stream = launch_config.stream,
    };
    int err = cu.launch_ex(&config, (const void *)gelu_fwd_stub, args);
    if (err)
        die("cudaLaunchKernelExC(gelu_fwd) returned %d", err);
}

/* ---- set-up ---- */
static struct {
    CUcontext ctx;
    CUmodule module;
    CUstream s1, s2, s3, s4;
    CUevent event;
    CUgraphExec graph;
    CUfunction vector_add, relu, reduce, grid_sync, long_kernel;
    CUdeviceptr warmup_alloc;
} h;

static char long_name[LONG_NAME_LEN + 1];
static char host_buf[1 << 17];

static void set_up(void) {
    CUdevice dev;
    CUgraph graph;
    static const char image[] = "stub cubin";
    CHECK(cu.init(0));
    CHECK(cu.device_get(&dev, 0));
    CHECK(cu.ctx_create(&h.ctx, 0, dev));
    CHECK(cu.module_load_data(&h.module, image));
    CHECK(cu.stream_create(&h.s1, 0));
    CHECK(cu.stream_create(&h.s2, 0));
    CHECK(cu.stream_create(&h.s3, 0));
    CHECK(cu.stream_create(&h.s4, 0));
    CHECK(cu.event_create(&h.event, 0));
    CHECK(cu.graph_create(&graph, 0));
    CHECK(cu.graph_instantiate(&h.graph, graph, 0));
    /* What nvcc's start-up code registers. */
    cu.register_function((const void *)scale_values_stub, NAME_SCALE);
    cu.register_function((const void *)gelu_fwd_stub, NAME_GELU);

    size_t n = strlen(LONG_NAME_PREFIX);
    memcpy(long_name, LONG_NAME_PREFIX, n);
    for (size_t i = n; i < LONG_NAME_LEN; i++)
        long_name[i] = (char)('0' + (i - n) % 10);
    long_name[LONG_NAME_LEN] = 0;
}

static void look_up_kernels(void) {
    CHECK(cu.module_get_function(&h.vector_add, h.module, NAME_VECTOR_ADD));
    CHECK(cu.module_get_function(&h.relu, h.module, NAME_RELU));
    CHECK(cu.module_get_function(&h.reduce, h.module, NAME_REDUCE));
    CHECK(cu.module_get_function(&h.grid_sync, h.module, NAME_GRID_SYNC));
    CHECK(cu.module_get_function(&h.long_kernel, h.module, long_name));
    CUfunction missing = NULL;
    CUresult r = cu.module_get_function(&missing, h.module, NAME_MISSING);
    if (r != 500 || missing)
        die("looking up %s: %d, expected CUDA_ERROR_NOT_FOUND (500)", NAME_MISSING, r);
}

static const dim3 SCALE_GRID = {64, 1, 1}, SCALE_BLOCK = {512, 1, 1};
static const dim3 GELU_GRID = {128, 1, 1}, GELU_BLOCK = {256, 1, 1};
#define GELU_SHMEM 4096

/* One runtime launch per host stub, so that the runtime looks their kernels up now. */
static void warm_up(void) {
    configure(SCALE_GRID, SCALE_BLOCK, 0, h.s3);
    scale_values_stub((float *)0x1000, 2.0f);
    configure(GELU_GRID, GELU_BLOCK, GELU_SHMEM, h.s3);
    gelu_fwd_stub((const float *)0x1000, (float *)0x2000, 1024);
    CHECK(cu.mem_alloc(&h.warmup_alloc, WARMUP_ALLOC_BYTES));
}

/* ---- the per-symbol counters of both stub libraries ---- */
#define MAX_COUNTERS 128

struct counts {
    int n;
    const char *names[MAX_COUNTERS];
    unsigned long calls[MAX_COUNTERS];
};

static void read_counts(struct counts *c) {
    c->n = cu.counters(c->names, c->calls, MAX_COUNTERS - 8);
    if (c->n > MAX_COUNTERS - 8)
        die("too many counters");
    c->n += cu.rt_counters(c->names + c->n, c->calls + c->n, 8);
}

static unsigned long count_of(const struct counts *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->calls[i];
    return 0;
}

/* ---- the main scenario ---- */
static CUdeviceptr allocs[ALLOC_CALLS], pitch_alloc, managed_alloc, async_allocs[ASYNC_ALLOC_CALLS];

static void allocate(void) {
    for (int i = 0; i < ALLOC_CALLS; i++)
        T(F_ALLOC, cu.mem_alloc(&allocs[i], (size_t)(i + 1) * ALLOC_UNIT));
    size_t pitch = 0;
    T(F_ALLOC_PITCH, cu.mem_alloc_pitch(&pitch_alloc, &pitch, PITCH_WIDTH, PITCH_HEIGHT, 4));
    if (pitch != PITCH_WIDTH)
        die("pitch %zu, expected %d", pitch, PITCH_WIDTH);
    T(F_ALLOC_MANAGED, cu.mem_alloc_managed(&managed_alloc, MANAGED_BYTES, 1));
    for (int i = 0; i < ASYNC_ALLOC_CALLS; i++)
        T(F_ALLOC_ASYNC, cu.mem_alloc_async(&async_allocs[i], ASYNC_ALLOC_BYTES, h.s1));
}

static CUDA_MEMCPY2D copy_2d(int to_device, size_t width, size_t height) {
    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.WidthInBytes = width;
    c.Height = height;
    if (to_device) {
        c.srcMemoryType = MEM_HOST;
        c.srcHost = host_buf;
        c.srcPitch = width;
        c.dstMemoryType = MEM_DEVICE;
        c.dstDevice = allocs[ALLOC_CALLS - 1];
        c.dstPitch = PITCH_WIDTH;
    } else {
        c.srcMemoryType = MEM_DEVICE;
        c.srcDevice = allocs[ALLOC_CALLS - 1];
        c.srcPitch = PITCH_WIDTH;
        c.dstMemoryType = MEM_HOST;
        c.dstHost = host_buf;
        c.dstPitch = width;
    }
    return c;
}

static void copies_in(void) {
    for (int i = 0; i < HTOD_CALLS; i++)
        T(F_HTOD, cu.memcpy_htod(allocs[ALLOC_CALLS - 1], host_buf, HTOD_BYTES));
    CUDA_MEMCPY2D c = copy_2d(1, COPY2D_HTOD_WIDTH, COPY2D_HTOD_HEIGHT);
    for (int i = 0; i < COPY2D_HTOD_CALLS; i++)
        T(F_2D, cu.memcpy_2d(&c));
    for (int i = 0; i < HTOD_ASYNC_CALLS; i++)
        T(F_HTOD_ASYNC, cu.memcpy_htod_async(allocs[ALLOC_CALLS - 2], host_buf, HTOD_ASYNC_BYTES, h.s1));
}

static void launches(void) {
    float *x = (float *)allocs[0], *y = (float *)allocs[1];
    int n = 1 << 20;
    float factor = 0.5f;
    void *args[] = {&x, &y, &n};
    void *scalar_args[] = {&x, &factor};

    for (int i = 0; i < N_PTSZ; i++)
        T(F_LAUNCH, cu.launch_kernel_ptsz(h.vector_add, 8, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
    for (int i = 0; i < N_VECTOR_ADD; i++) {
        T(F_LAUNCH, cu.launch_kernel(h.vector_add, 4, 2, 1, 256, 1, 1, 1024, h.s1, args, NULL));
        if (i < N_RELU)
            T(F_LAUNCH, cu.launch_kernel(h.relu, 16, 1, 1, 128, 2, 1, 0, h.s2, scalar_args, NULL));
        if (i < N_REDUCE) {
            CUlaunchConfig config = {32, 1, 1, 64, 1, 1, 2048, h.s2, NULL, 0};
            T(F_LAUNCH_EX, cu.launch_kernel_ex(&config, h.reduce, args, NULL));
        }
        if (i < N_GRID_SYNC)
            T(F_COOPERATIVE, cu.launch_cooperative(h.grid_sync, 2, 1, 1, 32, 1, 1, 512, h.s1, args));
        if (i < N_LONG)
            T(F_LAUNCH, cu.launch_kernel(h.long_kernel, 1, 1, 1, 32, 1, 1, 0, h.s1, args, NULL));
        if (i < N_SCALE) {
            configure(SCALE_GRID, SCALE_BLOCK, 0, h.s3);
            uint64_t t0 = now_ns();
            scale_values_stub(x, factor);
            record(F_LAUNCH, now_ns() - t0);
        }
        if (i < N_GELU) {
            configure(GELU_GRID, GELU_BLOCK, GELU_SHMEM, h.s3);
            uint64_t t0 = now_ns();
            gelu_fwd_stub(x, y, n);
            record(F_LAUNCH_EX, now_ns() - t0);
        }
        if (i < N_GRAPH)
            T(F_GRAPH, cu.graph_launch(h.graph, h.s4));
        if ((i + 1) % (N_VECTOR_ADD / N_SYNC_S1) == 0)
            T(F_STREAM_SYNC, cu.stream_sync(h.s1));
        if ((i + 1) % (N_VECTOR_ADD / N_SYNC_S2) == 0)
            T(F_STREAM_SYNC, cu.stream_sync(h.s2));
    }
    CHECK(cu.event_record(h.event, h.s1));
    for (int i = 0; i < N_EVENT_SYNC; i++)
        T(F_EVENT_SYNC, cu.event_sync(h.event));
    for (int i = 0; i < N_CTX_SYNC; i++)
        T(F_CTX_SYNC, cu.ctx_sync());
}

static void copies_out(void) {
    for (int i = 0; i < DTOH_CALLS; i++)
        T(F_DTOH, cu.memcpy_dtoh(host_buf, allocs[ALLOC_CALLS - 1], DTOH_BYTES));
    for (int i = 0; i < DTOH_ASYNC_CALLS; i++)
        T(F_DTOH_ASYNC, cu.memcpy_dtoh_async(host_buf, allocs[ALLOC_CALLS - 1], DTOH_ASYNC_BYTES, h.s2));
    CUDA_MEMCPY2D c = copy_2d(0, COPY2D_DTOH_WIDTH, COPY2D_DTOH_HEIGHT);
    for (int i = 0; i < COPY2D_DTOH_CALLS; i++)
        T(F_2D, cu.memcpy_2d(&c));
    for (int i = 0; i < DTOD_CALLS; i++)
        T(F_DTOD, cu.memcpy_dtod(allocs[ALLOC_CALLS - 1], allocs[ALLOC_CALLS - 2], DTOD_BYTES));
    for (int i = 0; i < DTOD_ASYNC_CALLS; i++)
        T(F_DTOD_ASYNC, cu.memcpy_dtod_async(allocs[ALLOC_CALLS - 1], allocs[ALLOC_CALLS - 2],
                                   DTOD_ASYNC_BYTES, h.s2));
    for (int i = 0; i < PEER_CALLS; i++)
        T(F_PEER, cu.memcpy_peer(allocs[ALLOC_CALLS - 1], h.ctx, allocs[ALLOC_CALLS - 2], h.ctx,
                             PEER_BYTES));
    for (int i = 0; i < UNIFIED_CALLS; i++)
        T(F_MEMCPY, cu.memcpy_unified(managed_alloc, allocs[ALLOC_CALLS - 1], UNIFIED_BYTES));
    for (int i = 0; i < UNIFIED_ASYNC_CALLS; i++)
        T(F_MEMCPY_ASYNC, cu.memcpy_unified_async(allocs[ALLOC_CALLS - 1], managed_alloc,
                                      UNIFIED_ASYNC_BYTES, h.s1));
}

static void free_memory(void) {
    for (int i = 0; i < ALLOC_FREED; i++)
        T(F_FREE, cu.mem_free(allocs[i]));
    T(F_FREE, cu.mem_free(pitch_alloc));
    T(F_FREE_ASYNC, cu.mem_free_async(async_allocs[0], h.s1));
    if (h.warmup_alloc)
        T(F_FREE, cu.mem_free(h.warmup_alloc));
}

/* ---- bench ---- */
static void bench(int runtime, long calls, uint64_t *ns) {
    float *x = (float *)0x1000;
    int n = 1024;
    void *args[] = {&x, &x, &n};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (runtime) {
        configure(SCALE_GRID, SCALE_BLOCK, 0, h.s3);
        for (long i = 0; i < calls; i++)
            scale_values_stub(x, 1.0f);
    } else {
        for (long i = 0; i < calls; i++)
            CHECK(cu.launch_kernel(h.vector_add, 4, 2, 1, 256, 1, 1, 1024, h.s1, args, NULL));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)t1.tv_nsec -
          (uint64_t)t0.tv_nsec;
}

/* ---- ground truth ---- */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "host_us": per family, calls, total, mean, p50 (nearest rank) and max, in µs. */
static void print_host_times(FILE *out) {
    fputs(",\"host_us\":{", out);
    int first = 1;
    for (int f = 0; f < F_COUNT; f++) {
        int n = n_samples[f];
        if (n == 0)
            continue;
        qsort(samples[f], (size_t)n, sizeof samples[f][0], cmp_u64);
        uint64_t total = 0;
        for (int i = 0; i < n; i++)
            total += samples[f][i];
        int rank = (n + 1) / 2; /* ceil(0.5 n), 1-based */
        fprintf(out,
                "%s\"%s\":{\"calls\":%d,\"total_us\":%.3f,\"mean_us\":%.3f,\"p50_us\":%.3f,"
                "\"max_us\":%.3f}",
                first ? "" : ",", family_names[f], n, (double)total / 1e3,
                (double)total / 1e3 / n, (double)samples[f][rank - 1] / 1e3,
                (double)samples[f][n - 1] / 1e3);
        first = 0;
    }
    fputc('}', out);
}

static void print_truth(FILE *out, const char *mode, int waited, long probe_wait_ms,
                        const struct counts *before, const struct counts *after,
                        double elapsed_s, long bench_calls, uint64_t bench_ns) {
    fprintf(out, "{\"mode\":\"%s\",\"pid\":%d,\"tid\":%ld,\"waited_for_signal\":%s", mode,
            (int)getpid(), (long)syscall(SYS_gettid), waited ? "true" : "false");
    /* --wait-for-probes: ms waited; -1: gave up; absent: not asked. */
    if (probe_wait_ms != -2)
        fprintf(out, ",\"waited_for_probes_ms\":%ld", probe_wait_ms);
    fprintf(out, ",\"driver\":\"%s\",\"runtime\":\"%s\"", driver_path, runtime_path);
    fprintf(out,
            ",\"functions\":{\"vector_add\":\"%p\",\"relu_kernel\":\"%p\","
            "\"reduce_rowwise\":\"%p\",\"grid_sync\":\"%p\",\"long_kernel\":\"%p\"}",
            h.vector_add, h.relu, h.reduce, h.grid_sync, h.long_kernel);
    fprintf(out,
            ",\"streams\":{\"s1\":\"%p\",\"s2\":\"%p\",\"s3\":\"%p\",\"s4\":\"%p\"},"
            "\"graph_exec\":\"%p\",\"host_stubs\":{\"scale_values\":\"%p\",\"gelu_fwd\":\"%p\"}",
            h.s1, h.s2, h.s3, h.s4, h.graph, (void *)scale_values_stub, (void *)gelu_fwd_stub);
    /* Calls made in the counted phase, per exported symbol, as the stubs counted them. */
    fputs(",\"stub_calls\":{", out);
    int first = 1;
    for (int i = 0; i < after->n; i++) {
        unsigned long n = after->calls[i] - count_of(before, after->names[i]);
        if (n == 0)
            continue;
        fprintf(out, "%s\"%s\":%lu", first ? "" : ",", after->names[i], n);
        first = 0;
    }
    fputc('}', out);
    print_host_times(out);
    fprintf(out, ",\"elapsed_s\":%.6f", elapsed_s);
    if (bench_calls)
        fprintf(out, ",\"calls\":%ld,\"total_ns\":%llu,\"ns_per_call\":%.1f", bench_calls,
                (unsigned long long)bench_ns, (double)bench_ns / (double)bench_calls);
    fputs("}\n", out);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000};
    while (ms > 0 && nanosleep(&d, &d) && errno == EINTR) {
    }
}

static void usage(void) {
    fputs("usage: cuda-workload [--lib-dir DIR] [--start-delay-ms MS] [--load-settle-ms MS]\n"
          "                     [--wait-for-probes MS] [--wait-for-signal]\n"
          "                     [--launch-us US] [--sync-us US] [--copy-us US] [--truth FILE]\n"
          "                     [main | bench CALLS | bench-runtime CALLS]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    const char *lib_dir = getenv("STUB_CUDA_LIB_DIR"), *truth = NULL, *mode = "main";
    long delay_ms = 0, settle_ms = 0, probe_timeout_ms = -1, probe_wait_ms = -2, bench_calls = 0;
    int wait = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--wait-for-signal")) {
            wait = 1;
        } else if (!v && a[0] == '-') {
            usage();
        } else if (!strcmp(a, "--lib-dir")) {
            lib_dir = argv[++i];
        } else if (!strcmp(a, "--start-delay-ms")) {
            delay_ms = atol(argv[++i]);
        } else if (!strcmp(a, "--wait-for-probes")) {
            probe_timeout_ms = atol(argv[++i]);
        } else if (!strcmp(a, "--load-settle-ms")) {
            settle_ms = atol(argv[++i]);
        } else if (!strcmp(a, "--truth")) {
            truth = argv[++i];
        } else if (!strcmp(a, "--launch-us")) {
            setenv("STUB_CUDA_LAUNCH_US", argv[++i], 1);
        } else if (!strcmp(a, "--sync-us")) {
            setenv("STUB_CUDA_SYNC_US", argv[++i], 1);
        } else if (!strcmp(a, "--copy-us")) {
            setenv("STUB_CUDA_COPY_US", argv[++i], 1);
        } else if (!strcmp(a, "main")) {
            mode = a;
        } else if (!strcmp(a, "bench") || !strcmp(a, "bench-runtime")) {
            if (!v || (bench_calls = atol(v)) <= 0)
                usage();
            mode = a;
            i++;
        } else {
            usage();
        }
    }
    int benching = strcmp(mode, "main") != 0;
    if (benching) {
        setenv("STUB_CUDA_LAUNCH_US", "0", 1);
        setenv("STUB_CUDA_SYNC_US", "0", 1);
        setenv("STUB_CUDA_COPY_US", "0", 1);
    }
    /* SIGUSR1 stays pending until sigwait() takes it. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);

    sleep_ms(delay_ms);
    load_libraries(lib_dir);
    sleep_ms(settle_ms);
    if (probe_timeout_ms >= 0 && !wait)
        probe_wait_ms = wait_for_probes(driver_lib, runtime_lib, probe_timeout_ms);
    set_up();
    look_up_kernels();

    struct counts before = {0}, after = {0};
    if (wait) {
        warm_up();
        read_counts(&before);
        printf("ready\n");
        fflush(stdout);
        int sig;
        if (sigwait(&usr1, &sig))
            die("sigwait failed");
        if (probe_timeout_ms >= 0)
            probe_wait_ms = wait_for_probes(driver_lib, runtime_lib, probe_timeout_ms);
    }
    double t0 = now_s();
    uint64_t bench_ns = 0;
    if (benching) {
        bench(!strcmp(mode, "bench-runtime"), bench_calls, &bench_ns);
    } else {
        allocate();
        copies_in();
        launches();
        copies_out();
        free_memory();
    }
    double elapsed = now_s() - t0;
    read_counts(&after);

    FILE *out = stdout;
    if (truth && !(out = fopen(truth, "w")))
        die("cannot write %s: %s", truth, strerror(errno));
    print_truth(out, mode, wait, probe_wait_ms, &before, &after, elapsed, bench_calls, bench_ns);
    fclose(out);
    return 0;
}
