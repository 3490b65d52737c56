//! Byte classes of the HTTP grammar, and the comma-separated list rule.
//!
//! The tables mirror the ones httparse uses, so that a byte the incremental
//! scanners here reject is a byte httparse would reject as well: the scanners
//! only report errors earlier, never different ones.

/// RFC 9110 5.6.2:
///
/// ```text
/// token = 1*tchar
/// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
///         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
/// ```
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `is_tchar` as a table: one load per byte where the range checks cost
/// several compares (header names are checked on every response).
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
            | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// `token` (RFC 9110 5.6.2): one or more tchar.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A byte httparse accepts inside a request-target: any visible byte or
/// obs-text, i.e. everything above SP except DEL. The target grammar of
/// RFC 9112 3.2 is stricter; the form check in `head.rs` covers the part of
/// it that matters for routing.
pub(crate) fn is_target_byte(b: u8) -> bool {
    b > b' ' && b != 0x7F
}

/// RFC 9110 5.5:
///
/// ```text
/// field-value = *field-content
/// field-vchar = VCHAR / obs-text
/// ```
///
/// plus SP and HTAB inside the value. Every other control byte (NUL, bare
/// CR, LF, DEL ...) is forbidden: it is how response splitting and request
/// smuggling payloads get through lenient parsers.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7F)
}

/// Every byte of `value` is a field-value byte ([`is_field_value_byte`]).
/// Eight bytes at a time: a response's header values are checked on every
/// response, and a byte loop cost about five instructions per byte. A word
/// that may hold a control byte or DEL (or holds a tab, which the word test
/// cannot tell from them) is looked at byte by byte.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        // Nonzero iff some byte is below 0x20 (bytes with the high bit set
        // are obs-text and never flagged).
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH_BITS;
        // Nonzero iff some byte is 0x7F.
        let del = x ^ (ONES * 0x7F);
        let has_del = del.wrapping_sub(ONES) & !del & HIGH_BITS;
        if below_space | has_del != 0 && !word.iter().all(|&b| is_field_value_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_field_value_byte(b))
}

/// Optional whitespace (RFC 9110 5.6.3): `OWS = *( SP / HTAB )`.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The elements of a comma-separated list (RFC 9110 5.6.1), OWS trimmed.
///
/// Empty elements are skipped: "a recipient MUST parse and ignore a
/// reasonable number of empty list elements".
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_trim_ows_and_skip_empty_elements() {
        let v: Vec<&[u8]> = list_elements(b" a ,, \tb\t,").collect();
        assert_eq!(v, vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn tchar_excludes_delimiters() {
        for b in b"\"(),/:;<=>?@[\\]{} \t".iter() {
            assert!(!is_tchar(*b), "{}", *b as char);
        }
        assert!(is_token(b"X-Custom_1.2~"));
        assert!(!is_token(b""));
    }

    #[test]
    fn word_at_a_time_value_check_agrees_with_the_byte_rule() {
        // Every byte value at every position of words and remainders.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(
                        is_field_value(&v),
                        is_field_value_byte(b),
                        "{len} {at} {b:#x}"
                    );
                }
            }
        }
        assert!(is_field_value(b""));
        assert!(is_field_value(b"text/plain; charset=\x80\xff\tx"));
    }

    #[test]
    fn field_values_allow_htab_and_obs_text_but_no_other_control() {
        assert!(is_field_value_byte(b'\t'));
        assert!(is_field_value_byte(0x80));
        assert!(is_field_value_byte(0xFF));
        for b in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7F]) {
            assert!(!is_field_value_byte(b), "{b:#x}");
        }
    }
}
