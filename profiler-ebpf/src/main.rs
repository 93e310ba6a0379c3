//! The profiler's eBPF programs. One module per hook family; entry points are thin wrappers
//! around `try_*` functions so the verifier-facing code stays readable.
#![no_std]
#![no_main]

mod capability;
mod cuda;
mod fd_socket;
mod maps;
mod net;
mod process;
mod sched;
mod sock_layer;
mod sock_record;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
