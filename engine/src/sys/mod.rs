//! The system calls the engine makes outside a ring: listener setup and
//! per-connection socket options, the close sequence, the descriptor
//! table, malloc's tunables, and the clocks. Every `unsafe` block here
//! says which kernel contract it relies on.

pub(crate) mod clock;
pub(crate) mod malloc;
pub(crate) mod socket;

/// A libc call's result as an `io::Result`: negative means `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
