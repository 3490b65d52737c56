//! Setting the ring up: the best flags this kernel takes (SINGLE_ISSUER,
//! DEFER_TASKRUN), the fallbacks said out loud, and the probe that tells
//! `--backend auto` whether io_uring is there at all.

use super::*;

/// Builds the ring with the best flags the kernel takes, saying so when it
/// has to fall back.
pub(super) fn build_ring(entries: u32, worker: usize) -> Result<IoUring, UringUnavailable> {
    type Setup = fn(&mut io_uring::Builder);
    let attempts: [(&str, Setup); 4] = [
        ("SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL", |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_submit_all();
        }),
        ("SINGLE_ISSUER|COOP_TASKRUN|SUBMIT_ALL", |b| {
            b.setup_single_issuer()
                .setup_coop_taskrun()
                .setup_submit_all();
        }),
        ("COOP_TASKRUN", |b| {
            b.setup_coop_taskrun();
        }),
        ("no setup flags", |_| {}),
    ];
    let mut last_err = None;
    for (i, (name, setup)) in attempts.iter().enumerate() {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries.saturating_mul(4).max(4096));
        setup(&mut builder);
        match builder.build(entries) {
            Ok(ring) => {
                if i > 0 {
                    crate::ops::log::warn!(
                        worker,
                        wanted = attempts[0].0,
                        using = name,
                        "the kernel refused the preferred io_uring setup flags; falling back"
                    );
                }
                return Ok(ring);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(UringUnavailable::diagnose(e)),
        }
    }
    Err(UringUnavailable::diagnose(last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

/// Whether io_uring can serve here: a small ring with a provided-buffer
/// ring (Linux 5.19, which also brought multishot accept). The error
/// names why not.
pub(crate) fn probe() -> Result<(), UringUnavailable> {
    let ring = IoUring::new(8).map_err(UringUnavailable::diagnose)?;
    ProvidedBufRing::new(&ring.submitter(), 2, 64, RECV_BUFFER_GROUP)
        .map(drop)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) || e.kind() == io::ErrorKind::InvalidInput {
                UringUnavailable::MissingFeature {
                    feature: "provided buffer rings (IORING_REGISTER_PBUF_RING)",
                    needs: "Linux 5.19 or later",
                }
            } else {
                UringUnavailable::Setup(e)
            }
        })
}

pub(super) fn timespec_at(t: MonoTime) -> Timespec {
    let (secs, nanos) = t.secs_nanos();
    Timespec::new().sec(secs).nsec(nanos)
}
