//! The demo workload's "gpu" thread: a small inference loop on a CUDA driver library that it
//! `dlopen`s, like a Python framework does. `cargo xtask demo` hands it the stand-in
//! `libcuda.so.1` from tests/cuda/ (no GPU needed), whose launches and syncs busy-wait for
//! `STUB_CUDA_LAUNCH_US` / `STUB_CUDA_SYNC_US` (read from the environment when it loads).
//!
//! It loads the library 1.5 s in (as if loading a model), gives the profiler ~1 s to find it
//! (it scans for new libraries every 250 ms), looks up three kernels by their mangled names,
//! allocates "weights" and then, every few milliseconds: copies a batch in, launches
//! rmsnorm → gemm → softmax → gemm per layer on one stream, synchronizes, copies the next token
//! ids out; every 25 steps it allocates a KV-cache block and frees the oldest beyond four.
//! Nothing is printed on stdout (`xtask demo` stops reading it after the banner).

use std::{
    collections::VecDeque,
    ffi::{CStr, CString, c_char, c_void},
    os::unix::ffi::OsStrExt as _,
    path::Path,
    ptr, thread,
    time::Duration,
};

type CuResult = i32;
type CuModule = *mut c_void;
type CuFunction = *mut c_void;
type CuStream = *mut c_void;
type CuDevicePtr = u64;

// The driver entry points, with the exact C signatures of cuda.h (CUDA 12).
/// `CUresult cuInit(unsigned int Flags)`
type CuInit = unsafe extern "C" fn(u32) -> CuResult;
/// `CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)`
type CuModuleGetFunction =
    unsafe extern "C" fn(*mut CuFunction, CuModule, *const c_char) -> CuResult;
/// `CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
/// unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
/// unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
/// void **kernelParams, void **extra)`
type CuLaunchKernel = unsafe extern "C" fn(
    CuFunction,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    CuStream,
    *mut *mut c_void,
    *mut *mut c_void,
) -> CuResult;
/// `CUresult cuStreamSynchronize(CUstream hStream)`
type CuStreamSynchronize = unsafe extern "C" fn(CuStream) -> CuResult;
/// `CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)`
type CuMemAlloc = unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult;
/// `CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount)`
type CuMemcpyHtoD = unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult;
/// `CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)`
type CuMemcpyDtoH = unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize) -> CuResult;
/// `CUresult cuMemFree_v2(CUdeviceptr dptr)`
type CuMemFree = unsafe extern "C" fn(CuDevicePtr) -> CuResult;

/// Looks up `$name` with `$sym` and types it as the fn pointer `$ty`.
macro_rules! driver_fn {
    ($sym:ident, $name:literal as $ty:ty) => {{
        let address = $sym($name)?;
        // SAFETY: `$ty` spells out the C signature that cuda.h gives `$name` (see the type
        // aliases above; the stand-in declares the same), and a function's address and a fn
        // pointer have the same size and representation.
        unsafe { std::mem::transmute::<*mut c_void, $ty>(address) }
    }};
}

// Tokens per step, hidden size, layers, bytes per KV-cache block.
const BATCH: usize = 32;
const HIDDEN: usize = 1024;
const LAYERS: usize = 6;
const KV_BLOCK: usize = 8 << 20;
/// Handles the demo makes up instead of loading a module and creating a stream (the stand-in
/// only passes them around).
const FAKE_MODULE: usize = 0x5555_0000_1000;
const FAKE_STREAM: usize = 0x5555_0000_2000;

/// Starts the inference loop on the driver at `path`; errors end the thread with one line on
/// stderr.
pub fn run(path: &Path) {
    if let Err(e) = infer(path) {
        eprintln!("demo-workload: gpu thread stopped: {e}");
    }
}

fn infer(path: &Path) -> Result<(), String> {
    thread::sleep(Duration::from_millis(1500)); // "loading the model"
    let cu = Driver::open(path)?;
    thread::sleep(Duration::from_secs(1)); // the profiler's next library scan
    cu.init()?;
    let module: CuModule = ptr::without_provenance_mut(FAKE_MODULE);
    let stream: CuStream = ptr::without_provenance_mut(FAKE_STREAM);
    // One block per row for the row-wise kernels; a 32×32 output tile per gemm block, with two
    // input tiles in shared memory.
    let rows = BATCH as u32;
    let rmsnorm = Kernel {
        // rmsnorm_kernel(float*, float const*, float const*, int, int)
        f: cu.function(module, c"_Z14rmsnorm_kernelPfPKfS1_ii")?,
        grid: [rows, 1, 1],
        block: [256, 1, 1],
        shared_mem: 1024,
    };
    let gemm = Kernel {
        // gemm_kernel(float const*, float const*, float*, int, int, int)
        f: cu.function(module, c"_Z11gemm_kernelPKfS0_Pfiii")?,
        grid: [HIDDEN as u32 / 32, rows.div_ceil(32), 1],
        block: [32, 8, 1],
        shared_mem: 2 * 32 * 32 * 4,
    };
    let softmax = Kernel {
        // softmax_rowwise(float*, int, int)
        f: cu.function(module, c"_Z15softmax_rowwisePfii")?,
        grid: [rows, 1, 1],
        block: [128, 1, 1],
        shared_mem: 0,
    };

    let f32s = size_of::<f32>();
    let weights = cu.alloc(LAYERS * 2 * HIDDEN * HIDDEN * f32s)?;
    let gammas = cu.alloc(LAYERS * HIDDEN * f32s)?;
    let x = cu.alloc(BATCH * HIDDEN * f32s)?;
    let y = cu.alloc(BATCH * HIDDEN * f32s)?;
    let ids = cu.alloc(BATCH * size_of::<i32>())?;
    let input = vec![0.5f32; BATCH * HIDDEN];
    let mut next_ids = [0i32; BATCH];
    let mut kv_cache = VecDeque::new();
    // The kernels' int arguments.
    let (m, n) = (BATCH as i32, HIDDEN as i32);
    for step in 0u64.. {
        cu.copy_in(x, &input)?;
        for layer in 0..LAYERS {
            let gamma = gammas + (layer * HIDDEN * f32s) as u64;
            let w1 = weights + (2 * layer * HIDDEN * HIDDEN * f32s) as u64;
            let w2 = w1 + (HIDDEN * HIDDEN * f32s) as u64;
            let mut norm_args = [arg(&x), arg(&x), arg(&gamma), arg(&m), arg(&n)];
            cu.launch(&rmsnorm, stream, &mut norm_args)?;
            let mut up_args = [arg(&x), arg(&w1), arg(&y), arg(&m), arg(&n), arg(&n)];
            cu.launch(&gemm, stream, &mut up_args)?;
            cu.launch(&softmax, stream, &mut [arg(&y), arg(&m), arg(&n)])?;
            let mut down_args = [arg(&y), arg(&w2), arg(&x), arg(&m), arg(&n), arg(&n)];
            cu.launch(&gemm, stream, &mut down_args)?;
        }
        cu.synchronize(stream)?;
        cu.copy_out(&mut next_ids, ids)?;
        if step % 25 == 0 {
            kv_cache.push_back(cu.alloc(KV_BLOCK)?);
            if kv_cache.len() > 4
                && let Some(oldest) = kv_cache.pop_front()
            {
                cu.free(oldest)?;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// A kernel and the launch configuration it always runs with.
struct Kernel {
    f: CuFunction,
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
}

/// One entry of a launch's `kernelParams`: the address of the argument's value.
fn arg<T>(value: &T) -> *mut c_void {
    ptr::from_ref(value).cast_mut().cast()
}

fn check(api: &str, result: CuResult) -> Result<(), String> {
    match result {
        0 => Ok(()),
        e => Err(format!("{api} returned CUresult {e}")),
    }
}

/// The entry points the loop uses, looked up in the library (which stays loaded for good).
struct Driver {
    init: CuInit,
    module_get_function: CuModuleGetFunction,
    launch_kernel: CuLaunchKernel,
    stream_synchronize: CuStreamSynchronize,
    mem_alloc: CuMemAlloc,
    memcpy_htod: CuMemcpyHtoD,
    memcpy_dtoh: CuMemcpyDtoH,
    mem_free: CuMemFree,
}

impl Driver {
    fn open(path: &Path) -> Result<Self, String> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: c_path is NUL-terminated and outlives the call. Loading runs the library's
        // constructors: the stand-in's only reads STUB_CUDA_* from the environment.
        let lib = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            return Err(format!("dlopen {}: {}", path.display(), dl_error()));
        }
        let sym = |name: &CStr| {
            // SAFETY: lib is a live handle (never closed) and name is NUL-terminated.
            let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
            if p.is_null() {
                Err(format!("{}: no {name:?}: {}", path.display(), dl_error()))
            } else {
                Ok(p)
            }
        };
        // Refuse a real driver: the demo makes up its module and stream handles, which only
        // the stand-in (it never dereferences a handle) accepts.
        sym(c"stubCudaCounters").map_err(|_| {
            format!(
                "{} is not the stand-in driver (tests/cuda/stub_cuda.c)",
                path.display()
            )
        })?;
        Ok(Driver {
            init: driver_fn!(sym, c"cuInit" as CuInit),
            module_get_function: driver_fn!(sym, c"cuModuleGetFunction" as CuModuleGetFunction),
            launch_kernel: driver_fn!(sym, c"cuLaunchKernel" as CuLaunchKernel),
            stream_synchronize: driver_fn!(sym, c"cuStreamSynchronize" as CuStreamSynchronize),
            mem_alloc: driver_fn!(sym, c"cuMemAlloc_v2" as CuMemAlloc),
            memcpy_htod: driver_fn!(sym, c"cuMemcpyHtoD_v2" as CuMemcpyHtoD),
            memcpy_dtoh: driver_fn!(sym, c"cuMemcpyDtoH_v2" as CuMemcpyDtoH),
            mem_free: driver_fn!(sym, c"cuMemFree_v2" as CuMemFree),
        })
    }

    fn init(&self) -> Result<(), String> {
        // SAFETY: plain integer argument.
        check("cuInit", unsafe { (self.init)(0) })
    }

    fn function(&self, module: CuModule, name: &CStr) -> Result<CuFunction, String> {
        let mut f = ptr::null_mut();
        // SAFETY: f is a valid place for the handle, name is NUL-terminated; the stand-in never
        // dereferences the module handle.
        check("cuModuleGetFunction", unsafe {
            (self.module_get_function)(&mut f, module, name.as_ptr())
        })?;
        Ok(f)
    }

    fn launch(
        &self,
        kernel: &Kernel,
        stream: CuStream,
        params: &mut [*mut c_void],
    ) -> Result<(), String> {
        let [gx, gy, gz] = kernel.grid;
        let [bx, by, bz] = kernel.block;
        // SAFETY: params holds one pointer per kernel parameter, each to a live value of the
        // parameter's type (as a real driver would read them, before the call returns); the
        // function came from cuModuleGetFunction; the stand-in never dereferences the stream
        // handle.
        check("cuLaunchKernel", unsafe {
            (self.launch_kernel)(
                kernel.f,
                gx,
                gy,
                gz,
                bx,
                by,
                bz,
                kernel.shared_mem,
                stream,
                params.as_mut_ptr(),
                ptr::null_mut(),
            )
        })
    }

    fn synchronize(&self, stream: CuStream) -> Result<(), String> {
        // SAFETY: the stand-in never dereferences the stream handle.
        check("cuStreamSynchronize", unsafe {
            (self.stream_synchronize)(stream)
        })
    }

    fn alloc(&self, bytes: usize) -> Result<CuDevicePtr, String> {
        let mut p = 0;
        // SAFETY: p is a valid place for the device pointer.
        check("cuMemAlloc_v2", unsafe { (self.mem_alloc)(&mut p, bytes) })?;
        Ok(p)
    }

    fn copy_in(&self, dst: CuDevicePtr, src: &[f32]) -> Result<(), String> {
        // SAFETY: the driver reads size_of_val(src) bytes from src, which holds that many.
        check("cuMemcpyHtoD_v2", unsafe {
            (self.memcpy_htod)(dst, src.as_ptr().cast(), size_of_val(src))
        })
    }

    fn copy_out(&self, dst: &mut [i32], src: CuDevicePtr) -> Result<(), String> {
        // SAFETY: the driver writes at most size_of_val(dst) bytes into dst, which holds that
        // many, and any bytes are a valid i32.
        check("cuMemcpyDtoH_v2", unsafe {
            (self.memcpy_dtoh)(dst.as_mut_ptr().cast(), src, size_of_val(dst))
        })
    }

    fn free(&self, p: CuDevicePtr) -> Result<(), String> {
        // SAFETY: a device pointer from cuMemAlloc_v2, freed once.
        check("cuMemFree_v2", unsafe { (self.mem_free)(p) })
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl* call on
    // this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}
