//! Reading one `#[repr(C)]` record out of ring-buffer bytes: the only place bytes from the
//! kernel become structs. Pure; never panics on short or misaligned input.

use aya::Pod;

/// The `T` at the start of `bytes`, or `None` when fewer than `size_of::<T>()` bytes are there.
pub fn read_record<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `T: Pod` is plain old data, valid for any bit pattern; the length was checked
    // above, and read_unaligned copes with the ring buffer's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::read_record;

    #[test]
    fn reads_at_any_alignment_and_refuses_short_input() {
        let bytes = [0u8, 1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(read_record::<[u32; 2]>(&bytes[1..]), Some([1, 2]));
        assert_eq!(read_record::<[u32; 2]>(&bytes[1..8]), None);
    }
}
