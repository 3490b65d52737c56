//! The open-file limit, raised before tests open hundreds of sockets.

use std::sync::Once;

/// Raises the soft RLIMIT_NOFILE to the hard limit, once per process: the
/// slowloris and churn tests hold several hundred sockets on both sides of
/// loopback, past the usual soft limit of 1024.
pub fn raise_fd_limit() {
    static RAISED: Once = Once::new();
    RAISED.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid rlimit for getrlimit to fill and setrlimit to read.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}
