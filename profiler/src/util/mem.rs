//! The agent's own memory.

/// Returns freed heap memory to the kernel (glibc keeps it for reuse otherwise, and it stays in
/// the process's RSS). For after a large, short-lived allocation such as a BTF parse.
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
