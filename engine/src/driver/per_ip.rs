//! The per-address connection limit: a fixed table of atomic counters
//! indexed by a keyed hash of the client address.
//!
//! Fixed size, so it costs no allocation per client and cannot be grown by
//! an attacker cycling addresses. Two addresses that hash to the same
//! counter share the limit: a client may be refused early (its bucket is
//! shared with a busy address), never admitted past its limit. The key is
//! random per process, so which addresses collide cannot be chosen from
//! outside. IPv6 clients are counted by their /64, the block one host or
//! one subscriber usually holds.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

/// Counters in the table: 16 KiB, and with a few hundred busy clients the
/// chance that two share a counter stays small.
pub(crate) const BUCKETS: usize = 4096;

#[derive(Debug)]
pub(crate) struct PerIpCap {
    limit: u32,
    key: u64,
    counts: Box<[AtomicU32]>,
}

impl PerIpCap {
    pub fn new(limit: usize, key: u64) -> PerIpCap {
        PerIpCap {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            key,
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn bucket(&self, addr: &SocketAddr) -> usize {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        let bits: u64 = match ip {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            // The /64 prefix, tagged so it never equals an IPv4 value.
            IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64 ^ (1 << 63),
        };
        // A keyed multiply-xorshift mix; the top bits pick the bucket.
        let mut h = (bits ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (h >> (64 - BUCKETS.trailing_zeros())) as usize
    }

    /// Claims one connection for `addr`'s bucket with one compare-and-swap
    /// (never check-then-add); the bucket to release later, or `None` when
    /// the bucket is at the limit.
    pub fn try_claim(&self, addr: &SocketAddr) -> Option<u16> {
        let bucket = self.bucket(addr);
        self.counts[bucket]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| bucket as u16)
    }

    pub fn release(&self, bucket: u16) {
        let previous = self.counts[usize::from(bucket)].fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "per-address count released more than claimed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_at_its_limit_and_admitted_after_a_release() {
        let cap = PerIpCap::new(2, 7);
        let a = addr("10.0.0.1:1000");
        let b1 = cap.try_claim(&a).unwrap();
        let _b2 = cap.try_claim(&addr("10.0.0.1:1001")).unwrap();
        assert_eq!(
            cap.try_claim(&addr("10.0.0.1:1002")),
            None,
            "port does not matter"
        );
        cap.release(b1);
        assert!(cap.try_claim(&a).is_some());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_its_ipv4_address() {
        let cap = PerIpCap::new(1, 7);
        assert!(cap.try_claim(&addr("192.0.2.7:1")).is_some());
        assert_eq!(cap.try_claim(&addr("[::ffff:192.0.2.7]:2")), None);
    }

    #[test]
    fn ipv6_is_counted_per_64_prefix() {
        let cap = PerIpCap::new(1, 7);
        assert!(cap.try_claim(&addr("[2001:db8:1:2::1]:1")).is_some());
        assert_eq!(cap.try_claim(&addr("[2001:db8:1:2::ffff]:1")), None);
    }

    #[test]
    fn distinct_addresses_mostly_land_in_distinct_buckets() {
        let cap = PerIpCap::new(1, 0x1234_5678);
        let admitted = (0..256u32)
            .filter(|i| {
                let a = SocketAddr::from(([10, 1, (i >> 8) as u8, *i as u8], 80));
                cap.try_claim(&a).is_some()
            })
            .count();
        // 256 keys into 4,096 buckets: a handful of collisions at most.
        assert!(admitted >= 240, "only {admitted} of 256 admitted");
    }
}
