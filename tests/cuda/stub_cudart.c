/*
 * A stand-in libcudart.so.12 for the CUDA end-to-end tests: the launch entry points of the
 * CUDA runtime with their real signatures, doing what the CUDA 12 runtime does underneath:
 *
 *   first launch of a host stub:  cuLibraryGetKernel(&kernel, library, deviceName)
 *   every launch:                 cuKernelGetFunction(&function, kernel)
 *                                 cuLaunchKernel(function, grid…, block…, shmem, stream, args, NULL)
 *                                 (cudaLaunchKernelExC: cuLaunchKernelEx)
 *
 * Like the real runtime it finds the driver at run time: dlopen("libcuda.so.1") (or the path in
 * STUB_CUDA_DRIVER), dlsym. Host stubs are registered through stubRegisterFunction(), which
 * stands in for __cudaRegisterFunction (the call nvcc's generated code makes at start-up).
 *
 * Build: cc -shared -fPIC -O2 -fno-ipa-icf -Wl,-soname,libcudart.so.12 -o libcudart.so.12 \
 *        stub_cudart.c -ldl
 * It is also linked into cuda-workload-static (cuda_workload.c -DSTATIC_RUNTIME, -rdynamic),
 * standing in for libcudart_static.a: the same functions, exported by the executable.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;

typedef struct dim3 {
    unsigned int x, y, z;
} dim3;

typedef struct cudaLaunchAttribute_st {
    int id;
    char pad[8 - sizeof(int)];
    union {
        char pad[64];
    } val;
} cudaLaunchAttribute;

typedef struct cudaLaunchConfig_st {
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute *attrs;
    unsigned int numAttrs;
} cudaLaunchConfig_t;

_Static_assert(offsetof(cudaLaunchConfig_t, dynamicSmemBytes) == 24, "cudaLaunchConfig_t");
_Static_assert(offsetof(cudaLaunchConfig_t, stream) == 32, "cudaLaunchConfig_t");

enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorInsufficientDriver = 35,
};

/* Driver types (cuda.h). */
typedef int CUresult;
typedef struct CUfunc_st *CUfunction;
typedef struct CUlib_st *CUlibrary;
typedef struct CUkern_st *CUkernel;
typedef struct CUstream_st *CUstream;

typedef struct CUlaunchConfig_st {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    void *attrs; /* CUlaunchAttribute*, same layout as cudaLaunchAttribute */
    unsigned int numAttrs;
} CUlaunchConfig;

#define API __attribute__((noinline, used, visibility("default")))

/* ---- the driver, found at run time ---- */
static struct {
    CUresult (*init)(unsigned);
    CUresult (*library_load_data)(CUlibrary *, const void *, void *, void **, unsigned, void *,
                                  void **, unsigned);
    CUresult (*library_get_kernel)(CUkernel *, CUlibrary, const char *);
    CUresult (*kernel_get_function)(CUfunction *, CUkernel);
    CUresult (*launch_kernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);
    CUresult (*launch_kernel_ptsz)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, unsigned, CUstream, void **, void **);
    CUresult (*launch_kernel_ex)(const CUlaunchConfig *, CUfunction, void **, void **);
    CUresult (*launch_kernel_ex_ptsz)(const CUlaunchConfig *, CUfunction, void **, void **);
    CUlibrary library;
    cudaError_t status;
} drv;

static pthread_once_t drv_once = PTHREAD_ONCE_INIT;

static void *need(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "stub cudart: %s missing from the driver\n", name);
        drv.status = cudaErrorInsufficientDriver;
    }
    return p;
}

/* The "fat binary" a real program registers; only its address matters here. */
static const char fatbin[] = "stub fatbin";

static void load_driver(void) {
    const char *path = getenv("STUB_CUDA_DRIVER");
    void *lib = dlopen(path && *path ? path : "libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "stub cudart: %s\n", dlerror());
        drv.status = cudaErrorInsufficientDriver;
        return;
    }
    drv.init = need(lib, "cuInit");
    drv.library_load_data = need(lib, "cuLibraryLoadData");
    drv.library_get_kernel = need(lib, "cuLibraryGetKernel");
    drv.kernel_get_function = need(lib, "cuKernelGetFunction");
    drv.launch_kernel = need(lib, "cuLaunchKernel");
    drv.launch_kernel_ptsz = need(lib, "cuLaunchKernel_ptsz");
    drv.launch_kernel_ex = need(lib, "cuLaunchKernelEx");
    drv.launch_kernel_ex_ptsz = need(lib, "cuLaunchKernelEx_ptsz");
    if (drv.status)
        return;
    if (drv.init(0) || drv.library_load_data(&drv.library, fatbin, NULL, NULL, 0, NULL, NULL, 0))
        drv.status = cudaErrorInitializationError;
}

static cudaError_t driver(void) {
    pthread_once(&drv_once, load_driver);
    return drv.status;
}

/* ---- host stub → kernel registry ---- */
#define MAX_FUNCTIONS 64

static struct function {
    const void *host_fun;
    char *device_name;
    CUkernel kernel; /* looked up at the first launch */
} functions[MAX_FUNCTIONS];
static int n_functions;
static pthread_mutex_t functions_lock = PTHREAD_MUTEX_INITIALIZER;

/* Not a CUDA API: what __cudaRegisterFunction(…, hostFun, deviceFun, deviceName, …) does. */
API void stubRegisterFunction(const void *hostFun, const char *deviceName) {
    pthread_mutex_lock(&functions_lock);
    if (n_functions < MAX_FUNCTIONS) {
        functions[n_functions].host_fun = hostFun;
        functions[n_functions].device_name = strdup(deviceName);
        n_functions++;
    }
    pthread_mutex_unlock(&functions_lock);
}

/* The CUfunction to launch for `hostFun` in the current context. */
static cudaError_t function_of(const void *hostFun, CUfunction *f) {
    cudaError_t err = driver();
    if (err)
        return err;
    struct function *fn = NULL;
    pthread_mutex_lock(&functions_lock);
    for (int i = 0; i < n_functions; i++)
        if (functions[i].host_fun == hostFun)
            fn = &functions[i];
    if (fn && !fn->kernel &&
        drv.library_get_kernel(&fn->kernel, drv.library, fn->device_name) != 0)
        fn->kernel = NULL;
    CUkernel kernel = fn ? fn->kernel : NULL;
    pthread_mutex_unlock(&functions_lock);
    if (!kernel)
        return cudaErrorInvalidDeviceFunction;
    return drv.kernel_get_function(f, kernel) ? cudaErrorInvalidDeviceFunction : cudaSuccess;
}

/* ---- call counters (ground truth, like the driver stub's) ---- */
static struct {
    unsigned long launch, launch_ptsz, launch_ex, launch_ex_ptsz;
} counts;

/* Not a CUDA API: calls of the exported launch functions so far (see stubCudaCounters). */
API int stubCudartCounters(const char **names, unsigned long *calls, int max) {
    static const char *const all[] = {"cudaLaunchKernel", "cudaLaunchKernel_ptsz",
                                      "cudaLaunchKernelExC", "cudaLaunchKernelExC_ptsz"};
    const unsigned long values[] = {counts.launch, counts.launch_ptsz, counts.launch_ex,
                                    counts.launch_ex_ptsz};
    for (int i = 0; i < 4 && i < max; i++) {
        names[i] = all[i];
        calls[i] = values[i];
    }
    return 4;
}

#define COUNT(field) __atomic_fetch_add(&counts.field, 1, __ATOMIC_RELAXED)

static cudaError_t launch(int ptsz, const void *func, dim3 grid, dim3 block, void **args,
                          size_t sharedMem, cudaStream_t stream) {
    CUfunction f;
    cudaError_t err = function_of(func, &f);
    if (err)
        return err;
    CUresult r = (ptsz ? drv.launch_kernel_ptsz : drv.launch_kernel)(
        f, grid.x, grid.y, grid.z, block.x, block.y, block.z, (unsigned)sharedMem, stream, args,
        NULL);
    return r ? cudaErrorInvalidValue : cudaSuccess;
}

API cudaError_t cudaLaunchKernel(const void *func, dim3 gridDim, dim3 blockDim, void **args,
                                 size_t sharedMem, cudaStream_t stream) {
    COUNT(launch);
    return launch(0, func, gridDim, blockDim, args, sharedMem, stream);
}

API cudaError_t cudaLaunchKernel_ptsz(const void *func, dim3 gridDim, dim3 blockDim,
                                      void **args, size_t sharedMem, cudaStream_t stream) {
    COUNT(launch_ptsz);
    return launch(1, func, gridDim, blockDim, args, sharedMem, stream);
}

static cudaError_t launch_ex(int ptsz, const cudaLaunchConfig_t *config, const void *func,
                             void **args) {
    if (!config)
        return cudaErrorInvalidValue;
    CUfunction f;
    cudaError_t err = function_of(func, &f);
    if (err)
        return err;
    CUlaunchConfig c = {
        .gridDimX = config->gridDim.x,
        .gridDimY = config->gridDim.y,
        .gridDimZ = config->gridDim.z,
        .blockDimX = config->blockDim.x,
        .blockDimY = config->blockDim.y,
        .blockDimZ = config->blockDim.z,
        .sharedMemBytes = (unsigned)config->dynamicSmemBytes,
        .hStream = config->stream,
        .attrs = config->attrs,
        .numAttrs = config->numAttrs,
    };
    CUresult r = (ptsz ? drv.launch_kernel_ex_ptsz : drv.launch_kernel_ex)(&c, f, args, NULL);
    return r ? cudaErrorInvalidValue : cudaSuccess;
}

API cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t *config, const void *func,
                                    void **args) {
    COUNT(launch_ex);
    return launch_ex(0, config, func, args);
}

API cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t *config, const void *func,
                                         void **args) {
    COUNT(launch_ex_ptsz);
    return launch_ex(1, config, func, args);
}
