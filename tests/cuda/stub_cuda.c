/*
 * A stand-in libcuda.so.1 for the CUDA end-to-end tests: no GPU, but the real driver API
 * symbols with the real C signatures (from cuda.h, CUDA 12), so uprobes on it see exactly what
 * they would see on the real driver.
 *
 * Build: cc -shared -fPIC -O2 -fno-ipa-icf -Wl,-soname,libcuda.so.1 -o libcuda.so.1 stub_cuda.c
 *
 * Rules that keep the probes' ground truth exact:
 * - every exported function is its own code (noinline, its own call counter, -fno-ipa-icf so
 *   gcc never folds two of them into one body or a thunk), and no exported function calls
 *   another exported one: one call of the API is one hit of its uprobe;
 * - device pointers and handles are fake (never dereferenced): handles are stable functions of
 *   the kernel name, device pointers come from a bump allocator;
 * - host time inside a call is controlled by the environment, read once at load:
 *     STUB_CUDA_LAUNCH_US  busy-wait in kernel and graph launches (default 0)
 *     STUB_CUDA_SYNC_US    busy-wait in stream/context/event synchronization (default 0)
 *     STUB_CUDA_COPY_US    busy-wait in blocking copies (default 0)
 *     STUB_CUDA_ALLOC_US   busy-wait in allocations and frees (default 0)
 *   Busy-waits on CLOCK_MONOTONIC are precise to well under a microsecond when not preempted.
 * - the library counts its own calls per exported symbol: stubCudaCounters() hands them to
 *   the test program, as ground truth independent of the profiler.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- types, as cuda.h declares them ---- */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUlib_st *CUlibrary;
typedef struct CUkern_st *CUkernel;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUarray_st *CUarray;
typedef struct CUmemPoolHandle_st *CUmemoryPool;
typedef int CUjit_option;
typedef int CUlibraryOption;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
};

typedef enum CUmemorytype_enum {
    CU_MEMORYTYPE_HOST = 0x01,
    CU_MEMORYTYPE_DEVICE = 0x02,
    CU_MEMORYTYPE_ARRAY = 0x03,
    CU_MEMORYTYPE_UNIFIED = 0x04,
} CUmemorytype;

typedef struct CUDA_MEMCPY2D_st {
    size_t srcXInBytes;
    size_t srcY;
    CUmemorytype srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    CUarray srcArray;
    size_t srcPitch;
    size_t dstXInBytes;
    size_t dstY;
    CUmemorytype dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    CUarray dstArray;
    size_t dstPitch;
    size_t WidthInBytes;
    size_t Height;
} CUDA_MEMCPY2D;

_Static_assert(offsetof(CUDA_MEMCPY2D, srcMemoryType) == 16, "CUDA_MEMCPY2D layout");
_Static_assert(offsetof(CUDA_MEMCPY2D, dstMemoryType) == 72, "CUDA_MEMCPY2D layout");
_Static_assert(offsetof(CUDA_MEMCPY2D, WidthInBytes) == 112, "CUDA_MEMCPY2D layout");
_Static_assert(offsetof(CUDA_MEMCPY2D, Height) == 120, "CUDA_MEMCPY2D layout");
_Static_assert(sizeof(CUDA_MEMCPY2D) == 128, "CUDA_MEMCPY2D layout");

typedef struct CUlaunchAttribute_st {
    int id; /* CUlaunchAttributeID */
    char pad[8 - sizeof(int)];
    union {
        char pad[64];
    } value; /* CUlaunchAttributeValue */
} CUlaunchAttribute;

typedef struct CUlaunchConfig_st {
    unsigned int gridDimX;
    unsigned int gridDimY;
    unsigned int gridDimZ;
    unsigned int blockDimX;
    unsigned int blockDimY;
    unsigned int blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    CUlaunchAttribute *attrs;
    unsigned int numAttrs;
} CUlaunchConfig;

_Static_assert(offsetof(CUlaunchConfig, hStream) == 32, "CUlaunchConfig layout");
_Static_assert(offsetof(CUlaunchConfig, attrs) == 40, "CUlaunchConfig layout");
_Static_assert(offsetof(CUlaunchConfig, numAttrs) == 48, "CUlaunchConfig layout");

#define API __attribute__((noinline, used, visibility("default")))

/* ---- call counters, one per exported function ---- */
struct counter {
    const char *name;
    unsigned long calls;
    struct counter *next;
    int registered;
};

static struct counter *counters;

static void hit(struct counter *c) {
    if (!__atomic_exchange_n(&c->registered, 1, __ATOMIC_ACQ_REL)) {
        c->next = __atomic_load_n(&counters, __ATOMIC_ACQUIRE);
        while (!__atomic_compare_exchange_n(&counters, &c->next, c, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
        }
    }
    __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
}

/* Counts a call of the enclosing exported function. */
#define HIT()                                                                                  \
    do {                                                                                       \
        static struct counter c_ = {__func__, 0, 0, 0};                                        \
        hit(&c_);                                                                              \
    } while (0)

/* Not a CUDA API: the calls of each exported function so far. Fills up to `max` names and
 * counts; returns how many functions were called at least once. */
API int stubCudaCounters(const char **names, unsigned long *calls, int max) {
    int n = 0;
    for (struct counter *c = __atomic_load_n(&counters, __ATOMIC_ACQUIRE); c; c = c->next) {
        if (n < max) {
            names[n] = c->name;
            calls[n] = __atomic_load_n(&c->calls, __ATOMIC_RELAXED);
        }
        n++;
    }
    return n;
}

/* ---- durations ---- */
static long launch_us, sync_us, copy_us, alloc_us;

static long env_us(const char *name) {
    const char *v = getenv(name);
    return v ? atol(v) : 0;
}

__attribute__((constructor)) static void read_env(void) {
    launch_us = env_us("STUB_CUDA_LAUNCH_US");
    sync_us = env_us("STUB_CUDA_SYNC_US");
    copy_us = env_us("STUB_CUDA_COPY_US");
    alloc_us = env_us("STUB_CUDA_ALLOC_US");
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void spin_us(long us) {
    if (us <= 0)
        return;
    uint64_t end = now_ns() + (uint64_t)us * 1000u;
    while (now_ns() < end) {
    }
}

/* ---- fake handles ---- */
#define FUNCTION_BASE 0x7f1000000000ull
#define KERNEL_BASE 0x7f2000000000ull
#define KERNEL_FUNCTION_BASE 0x7f3000000000ull
#define MISC_HANDLE_BASE 0x7f4000000000ull
#define DEVICE_BASE 0x7fa000000000ull

static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    /* 16-byte aligned, below 2^36: stays inside its base's range. */
    return (h & 0xffffffffull) << 4;
}

static uint64_t next_misc = MISC_HANDLE_BASE + 0x1000;
static uint64_t misc_handle(void) { return __atomic_fetch_add(&next_misc, 0x100, __ATOMIC_RELAXED); }

static int initialized;

/* ---- initialization, contexts, modules (not probed; here so programs look real) ---- */
API CUresult cuInit(unsigned int flags) {
    HIT();
    (void)flags;
    initialized = 1;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    HIT();
    if (!device || ordinal != 0)
        return CUDA_ERROR_INVALID_VALUE;
    *device = 0;
    return CUDA_SUCCESS;
}

API CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice dev) {
    HIT();
    (void)flags;
    (void)dev;
    if (!ctx)
        return CUDA_ERROR_INVALID_VALUE;
    *ctx = (CUcontext)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuModuleLoadData(CUmodule *module, const void *image) {
    HIT();
    if (!module || !image)
        return CUDA_ERROR_INVALID_VALUE;
    *module = (CUmodule)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
                               void **jitOptionsValues, unsigned int numJitOptions,
                               CUlibraryOption *libraryOptions, void **libraryOptionValues,
                               unsigned int numLibraryOptions) {
    HIT();
    (void)jitOptions;
    (void)jitOptionsValues;
    (void)numJitOptions;
    (void)libraryOptions;
    (void)libraryOptionValues;
    (void)numLibraryOptions;
    if (!library || !code)
        return CUDA_ERROR_INVALID_VALUE;
    *library = (CUlibrary)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
    HIT();
    (void)flags;
    if (!stream)
        return CUDA_ERROR_INVALID_VALUE;
    *stream = (CUstream)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuEventCreate(CUevent *event, unsigned int flags) {
    HIT();
    (void)flags;
    if (!event)
        return CUDA_ERROR_INVALID_VALUE;
    *event = (CUevent)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuEventRecord(CUevent event, CUstream stream) {
    HIT();
    (void)stream;
    return event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

API CUresult cuGraphCreate(CUgraph *graph, unsigned int flags) {
    HIT();
    (void)flags;
    if (!graph)
        return CUDA_ERROR_INVALID_VALUE;
    *graph = (CUgraph)misc_handle();
    return CUDA_SUCCESS;
}

API CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph,
                                         unsigned long long flags) {
    HIT();
    (void)flags;
    if (!exec || !graph)
        return CUDA_ERROR_INVALID_VALUE;
    *exec = (CUgraphExec)misc_handle();
    return CUDA_SUCCESS;
}

/* ---- kernel names ---- */
static CUresult lookup(uint64_t base, void **out, void *scope, const char *name) {
    if (!out || !scope || !name)
        return CUDA_ERROR_INVALID_VALUE;
    /* A lookup that fails, as frameworks' probing lookups do: *out is left alone. */
    if (strncmp(name, "missing", 7) == 0)
        return CUDA_ERROR_NOT_FOUND;
    *out = (void *)(base | name_hash(name));
    return CUDA_SUCCESS;
}

API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
    HIT();
    return lookup(FUNCTION_BASE, (void **)hfunc, hmod, name);
}

API CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library, const char *name) {
    HIT();
    return lookup(KERNEL_BASE, (void **)pKernel, library, name);
}

/* Like the driver: the CUfunction of a CUkernel (in the current context) is another handle. */
API CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel) {
    HIT();
    if (!pFunc || ((uint64_t)kernel & ~0xffffffff0ull) != KERNEL_BASE)
        return CUDA_ERROR_INVALID_HANDLE;
    *pFunc = (CUfunction)(KERNEL_FUNCTION_BASE | ((uint64_t)kernel & 0xffffffff0ull));
    return CUDA_SUCCESS;
}

/* ---- launches ---- */
static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz) {
    if (!initialized)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!f || !gx || !gy || !gz || !bx || !by || !bz)
        return CUDA_ERROR_INVALID_VALUE;
    spin_us(launch_us);
    return CUDA_SUCCESS;
}

API CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                            unsigned int gridDimZ, unsigned int blockDimX,
                            unsigned int blockDimY, unsigned int blockDimZ,
                            unsigned int sharedMemBytes, CUstream hStream, void **kernelParams,
                            void **extra) {
    HIT();
    (void)sharedMemBytes, (void)hStream, (void)kernelParams, (void)extra;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ);
}

API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                 unsigned int gridDimZ, unsigned int blockDimX,
                                 unsigned int blockDimY, unsigned int blockDimZ,
                                 unsigned int sharedMemBytes, CUstream hStream,
                                 void **kernelParams, void **extra) {
    HIT();
    (void)sharedMemBytes, (void)hStream, (void)kernelParams, (void)extra;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ);
}

static CUresult launch_ex(const CUlaunchConfig *config, CUfunction f) {
    if (!config)
        return CUDA_ERROR_INVALID_VALUE;
    if (config->numAttrs && !config->attrs)
        return CUDA_ERROR_INVALID_VALUE;
    return launch(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX,
                  config->blockDimY, config->blockDimZ);
}

API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                              void **extra) {
    HIT();
    (void)kernelParams, (void)extra;
    return launch_ex(config, f);
}

API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f,
                                   void **kernelParams, void **extra) {
    HIT();
    (void)kernelParams, (void)extra;
    return launch_ex(config, f);
}

API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                       unsigned int gridDimY, unsigned int gridDimZ,
                                       unsigned int blockDimX, unsigned int blockDimY,
                                       unsigned int blockDimZ, unsigned int sharedMemBytes,
                                       CUstream hStream, void **kernelParams) {
    HIT();
    (void)sharedMemBytes, (void)hStream, (void)kernelParams;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ);
}

API CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                            unsigned int gridDimY, unsigned int gridDimZ,
                                            unsigned int blockDimX, unsigned int blockDimY,
                                            unsigned int blockDimZ, unsigned int sharedMemBytes,
                                            CUstream hStream, void **kernelParams) {
    HIT();
    (void)sharedMemBytes, (void)hStream, (void)kernelParams;
    return launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ);
}

static CUresult graph_launch(CUgraphExec exec) {
    if (!exec)
        return CUDA_ERROR_INVALID_VALUE;
    spin_us(launch_us);
    return CUDA_SUCCESS;
}

API CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    HIT();
    (void)hStream;
    return graph_launch(hGraphExec);
}

API CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
    HIT();
    (void)hStream;
    return graph_launch(hGraphExec);
}

/* ---- copies: no data moves (device pointers are fake) ---- */
static CUresult copy(int blocking, size_t bytes) {
    (void)bytes;
    if (blocking)
        spin_us(copy_us);
    return CUDA_SUCCESS;
}

API CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)srcHost;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dstDevice, const void *srcHost,
                                  size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)srcHost;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
    HIT();
    (void)dstHost, (void)srcDevice;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyDtoH_v2_ptds(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
    HIT();
    (void)dstHost, (void)srcDevice;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)srcDevice;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                  size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)srcDevice;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                                  CUstream hStream) {
    HIT();
    (void)dstDevice, (void)srcHost, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dstDevice, const void *srcHost,
                                       size_t ByteCount, CUstream hStream) {
    HIT();
    (void)dstDevice, (void)srcHost, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                  CUstream hStream) {
    HIT();
    (void)dstHost, (void)srcDevice, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                       CUstream hStream) {
    HIT();
    (void)dstHost, (void)srcDevice, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                  size_t ByteCount, CUstream hStream) {
    HIT();
    (void)dstDevice, (void)srcDevice, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                       size_t ByteCount, CUstream hStream) {
    HIT();
    (void)dstDevice, (void)srcDevice, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount) {
    HIT();
    (void)dst, (void)src;
    return copy(1, ByteCount);
}

API CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount) {
    HIT();
    (void)dst, (void)src;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount,
                           CUstream hStream) {
    HIT();
    (void)dst, (void)src, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount,
                                CUstream hStream) {
    HIT();
    (void)dst, (void)src, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyPeer(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                          CUcontext srcContext, size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)dstContext, (void)srcDevice, (void)srcContext;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyPeer_ptds(CUdeviceptr dstDevice, CUcontext dstContext,
                               CUdeviceptr srcDevice, CUcontext srcContext, size_t ByteCount) {
    HIT();
    (void)dstDevice, (void)dstContext, (void)srcDevice, (void)srcContext;
    return copy(1, ByteCount);
}

API CUresult cuMemcpyPeerAsync(CUdeviceptr dstDevice, CUcontext dstContext,
                               CUdeviceptr srcDevice, CUcontext srcContext, size_t ByteCount,
                               CUstream hStream) {
    HIT();
    (void)dstDevice, (void)dstContext, (void)srcDevice, (void)srcContext, (void)hStream;
    return copy(0, ByteCount);
}

API CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dstDevice, CUcontext dstContext,
                                    CUdeviceptr srcDevice, CUcontext srcContext,
                                    size_t ByteCount, CUstream hStream) {
    HIT();
    (void)dstDevice, (void)dstContext, (void)srcDevice, (void)srcContext, (void)hStream;
    return copy(0, ByteCount);
}

static CUresult copy_2d(int blocking, const CUDA_MEMCPY2D *p) {
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    if (p->srcMemoryType < CU_MEMORYTYPE_HOST || p->srcMemoryType > CU_MEMORYTYPE_UNIFIED ||
        p->dstMemoryType < CU_MEMORYTYPE_HOST || p->dstMemoryType > CU_MEMORYTYPE_UNIFIED)
        return CUDA_ERROR_INVALID_VALUE;
    return copy(blocking, p->WidthInBytes * p->Height);
}

API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *pCopy) {
    HIT();
    return copy_2d(1, pCopy);
}

API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *pCopy) {
    HIT();
    return copy_2d(1, pCopy);
}

API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *pCopy) {
    HIT();
    return copy_2d(1, pCopy);
}

API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *pCopy) {
    HIT();
    return copy_2d(1, pCopy);
}

API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *pCopy, CUstream hStream) {
    HIT();
    (void)hStream;
    return copy_2d(0, pCopy);
}

API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *pCopy, CUstream hStream) {
    HIT();
    (void)hStream;
    return copy_2d(0, pCopy);
}

/* ---- memory: a bump allocator of fake device addresses ---- */
static uint64_t next_device = DEVICE_BASE;

static CUresult alloc(CUdeviceptr *dptr, size_t bytes) {
    if (!dptr || !bytes)
        return CUDA_ERROR_INVALID_VALUE;
    spin_us(alloc_us);
    /* 2 MiB apart at least, like the driver's granularity; never 0. */
    uint64_t span = ((uint64_t)bytes + 0x1fffff) & ~0x1fffffull;
    *dptr = __atomic_fetch_add(&next_device, span, __ATOMIC_RELAXED);
    return CUDA_SUCCESS;
}

API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    HIT();
    return alloc(dptr, bytesize);
}

/* The pitch is the width rounded up to 512 bytes; the allocation is pitch × height. */
API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                size_t Height, unsigned int ElementSizeBytes) {
    HIT();
    if (!pPitch || !WidthInBytes || !Height ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t pitch = (WidthInBytes + 511) & ~(size_t)511;
    CUresult r = alloc(dptr, pitch * Height);
    if (r == CUDA_SUCCESS)
        *pPitch = pitch;
    return r;
}

API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
    HIT();
    (void)flags;
    return alloc(dptr, bytesize);
}

API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    HIT();
    (void)hStream;
    return alloc(dptr, bytesize);
}

API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    HIT();
    (void)hStream;
    return alloc(dptr, bytesize);
}

API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                     CUstream hStream) {
    HIT();
    (void)pool, (void)hStream;
    return alloc(dptr, bytesize);
}

API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                          CUmemoryPool pool, CUstream hStream) {
    HIT();
    (void)pool, (void)hStream;
    return alloc(dptr, bytesize);
}

static CUresult release(CUdeviceptr dptr) {
    if (dptr < DEVICE_BASE || dptr >= __atomic_load_n(&next_device, __ATOMIC_RELAXED))
        return CUDA_ERROR_INVALID_VALUE;
    spin_us(alloc_us);
    return CUDA_SUCCESS;
}

API CUresult cuMemFree_v2(CUdeviceptr dptr) {
    HIT();
    return release(dptr);
}

API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
    HIT();
    (void)hStream;
    return release(dptr);
}

API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
    HIT();
    (void)hStream;
    return release(dptr);
}

/* ---- synchronization ---- */
static CUresult wait_gpu(void) {
    spin_us(sync_us);
    return CUDA_SUCCESS;
}

API CUresult cuStreamSynchronize(CUstream hStream) {
    HIT();
    (void)hStream;
    return wait_gpu();
}

API CUresult cuStreamSynchronize_ptsz(CUstream hStream) {
    HIT();
    (void)hStream;
    return wait_gpu();
}

API CUresult cuCtxSynchronize(void) {
    HIT();
    return wait_gpu();
}

API CUresult cuEventSynchronize(CUevent hEvent) {
    HIT();
    if (!hEvent)
        return CUDA_ERROR_INVALID_HANDLE;
    return wait_gpu();
}
