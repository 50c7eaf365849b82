//! URL parsing for the http tripwire, without DNS or network access.
//!
//! [`parse`] splits `scheme://userinfo@host:port/path?query#fragment` and
//! classifies the host: a domain, or an IP literal in any of the spellings
//! `inet_aton` and browsers accept (`127.1`, `2130706433`, `0x7f000001`,
//! `0177.0.0.1`, `[::ffff:127.0.0.1]`, …), since attackers use those to dodge
//! blocklists. The parser is strict: whatever a browser or `curl` could read
//! differently from this parser (backslashes or `%` in the host, control or
//! invisible characters, Unicode characters that IDNA folds into ASCII) is
//! refused rather than guessed at.
//!
//! Everything borrows from the input; nothing allocates, nothing panics.

/// Longest URL accepted, in bytes (after trimming surrounding whitespace).
pub const MAX_URL: usize = 4096;

/// Longest domain name accepted, in bytes (without a trailing dot).
const MAX_DOMAIN: usize = 253;

/// Longest domain label accepted, in bytes.
const MAX_LABEL: usize = 63;

/// A parsed URL; every part borrows from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Url<'a> {
    /// Scheme as written (compare with [`Url::scheme_is`]).
    pub scheme: &'a str,
    /// Userinfo: everything before the last `@` of the authority, if there
    /// is an `@` (possibly empty).
    pub userinfo: Option<&'a str>,
    /// Host.
    pub host: Host<'a>,
    /// Explicit port, if the URL names one.
    pub port: Option<u16>,
    /// Path, query and fragment as written, starting with `/`, `?` or `#`;
    /// `""` if there are none.
    pub path: &'a str,
}

impl Url<'_> {
    /// Whether the scheme is `scheme`, ASCII case-insensitively
    /// (`HTTPS://x` has scheme `https`).
    pub fn scheme_is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The explicit port, or else the scheme's [`default_port`].
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }
}

/// A URL host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name as written, without a trailing dot. Labels are ASCII
    /// letters, digits, `-`, `_`, or non-ASCII characters (see
    /// [`Host::is_ascii_domain`]).
    Domain(&'a str),
    /// An IPv4 literal, in network order (`127.0.0.1` is `[127, 0, 0, 1]`).
    Ipv4([u8; 4]),
    /// An IPv6 literal as eight 16-bit groups (`::1` is `[0, …, 0, 1]`).
    Ipv6([u16; 8]),
}

impl Host<'_> {
    /// Whether the host is plain ASCII: `false` only for a domain with
    /// non-ASCII characters (an IDN, possibly a look-alike of another
    /// domain). IP literals are ASCII.
    pub fn is_ascii_domain(&self) -> bool {
        match self {
            Host::Domain(domain) => domain.is_ascii(),
            Host::Ipv4(_) | Host::Ipv6(_) => true,
        }
    }

    /// Whether a domain has a label starting with `xn--` (ASCII-encoded
    /// IDN, which may also be a look-alike). `false` for IP literals.
    pub fn has_punycode_label(&self) -> bool {
        match self {
            Host::Domain(domain) => domain
                .split('.')
                .any(|label| label.as_bytes().get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"xn--"))),
            Host::Ipv4(_) | Host::Ipv6(_) => false,
        }
    }

    /// Whether the host is an IP literal.
    pub fn is_ip(&self) -> bool {
        !matches!(self, Host::Domain(_))
    }

    /// The class of an IP literal; `None` for domains.
    ///
    /// IPv6 addresses that embed an IPv4 address are classified by the IPv4
    /// address: IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
    /// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
    /// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`.
    pub fn ip_class(&self) -> Option<IpClass> {
        match *self {
            Host::Domain(_) => None,
            Host::Ipv4(ip) => Some(ipv4_class(ip)),
            Host::Ipv6(groups) => Some(ipv6_class(groups)),
        }
    }
}

/// What kind of address an IP literal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpClass {
    /// Globally routable (anything not listed below).
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10`
    /// (carrier-grade NAT), `fc00::/7` (unique local), `fec0::/10`
    /// (deprecated site-local).
    Private,
    /// `169.254.0.0/16` (includes the cloud metadata service
    /// `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4` (except the broadcast address), `192.0.0.0/24`,
    /// documentation ranges (`192.0.2.0/24`, `198.51.100.0/24`,
    /// `203.0.113.0/24`, `2001:db8::/32`), benchmarking `198.18.0.0/15`,
    /// discard-only `100::/64`.
    Reserved,
}

/// Why a URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UrlError {
    /// No `scheme://` at the start (`javascript:…`, `example.com/x`,
    /// `//example.com`).
    NoScheme,
    /// The scheme is not `[A-Za-z][A-Za-z0-9+.-]*`.
    BadScheme,
    /// The host is empty (`https://`, `https://user@:80/`).
    EmptyHost,
    /// The host is neither a valid domain nor a valid IP literal: bad
    /// characters (including `\`, which browsers read as `/`), empty or
    /// over-long labels, a numeric host that is not a valid IPv4 address
    /// (`1.2.3.4.5`, `256.1.1.1`), or Unicode characters that IDNA would
    /// fold into different ASCII (`１２７.０.０.１`, `ｅxample.com`).
    BadHost,
    /// The port is not 1 to 5 digits with a value ≤ 65535.
    BadPort,
    /// A malformed IPv6 literal, or one with a zone id (`[fe80::1%25eth0]`).
    BadIpv6,
    /// `%` in the host (percent-encoding hides the real host).
    PercentEncodedHost,
    /// A control character, a space (ASCII or Unicode) or an invisible
    /// formatting character (zero-width, bidirectional override, BOM) inside
    /// the URL.
    ControlCharacter,
    /// Longer than [`MAX_URL`] bytes.
    TooLong,
}

/// Parses `input`, ignoring surrounding ASCII whitespace.
///
/// The authority (after `scheme://`) ends at the first `/`, `?` or `#`.
/// Userinfo is everything before its last `@`, so
/// `https://good.com@evil.com/` has host `evil.com`. The port follows the
/// last `:` (outside IPv6 brackets). A host ending in a number, or made
/// only of digit-led hexadecimal labels, must be a valid IPv4 address in
/// some `inet_aton` spelling; a trailing dot on the host is ignored.
pub fn parse(input: &str) -> Result<Url<'_>, UrlError> {
    let input = input.trim_matches(|c: char| c.is_ascii_whitespace());
    if input.len() > MAX_URL {
        return Err(UrlError::TooLong);
    }
    if input.chars().any(forbidden_anywhere) {
        return Err(UrlError::ControlCharacter);
    }
    let (scheme, rest) = input.split_once(':').ok_or(UrlError::NoScheme)?;
    let rest = rest.strip_prefix("//").ok_or(UrlError::NoScheme)?;
    if scheme.is_empty() {
        return Err(UrlError::NoScheme);
    }
    if !valid_scheme(scheme) {
        return Err(UrlError::BadScheme);
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(end).ok_or(UrlError::BadHost)?;
    if authority.contains('\\') {
        return Err(UrlError::BadHost);
    }
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = parse_host_port(host_port)?;
    Ok(Url { scheme, userinfo, host, port, path })
}

/// Whether `host` is `allowed` or a subdomain of it: ASCII
/// case-insensitive, trailing dots ignored on both. `allowed` of the form
/// `*.example.com` matches subdomains of `example.com` only, not the apex.
/// `evilgithub.com` does not match `github.com`; an empty `allowed` (or a
/// bare `*.`) matches nothing.
pub fn domain_matches(host: &str, allowed: &str) -> bool {
    let host = host.trim_end_matches('.').as_bytes();
    let allowed = allowed.trim_end_matches('.');
    let (allowed, subdomains_only) = match allowed.strip_prefix("*.") {
        Some(apex) => (apex.as_bytes(), true),
        None => (allowed.as_bytes(), false),
    };
    if allowed.is_empty() || host.is_empty() {
        return false;
    }
    if host.eq_ignore_ascii_case(allowed) {
        return !subdomains_only;
    }
    let Some(dot) = host.len().checked_sub(allowed.len()).and_then(|n| n.checked_sub(1)) else {
        return false;
    };
    host.get(dot) == Some(&b'.')
        && host.get(dot.saturating_add(1)..).is_some_and(|suffix| suffix.eq_ignore_ascii_case(allowed))
        && dot > 0
}

/// The default port of `http` (80) and `https` (443), ASCII
/// case-insensitively; `None` for other schemes.
pub fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// Characters refused anywhere in a URL: controls (C0, DEL, C1), Unicode
/// white space, and invisible formatting characters that make a URL read
/// differently from what it is.
fn forbidden_anywhere(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
                | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
                | '\u{202A}'..='\u{202E}' // bidirectional embeddings/overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{2069}' // bidirectional isolates
                | '\u{FEFF}' // byte order mark
        )
}

/// `[A-Za-z][A-Za-z0-9+.-]*`.
fn valid_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits and parses `host[:port]` or `[ipv6][:port]`.
fn parse_host_port(host_port: &str) -> Result<(Host<'_>, Option<u16>), UrlError> {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']').ok_or(UrlError::BadIpv6)?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(UrlError::BadHost),
        };
        if inner.contains('%') {
            return Err(UrlError::BadIpv6);
        }
        let groups = parse_ipv6(inner).ok_or(UrlError::BadIpv6)?;
        return Ok((Host::Ipv6(groups), parse_port(port)?));
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    if host.contains('%') {
        return Err(UrlError::PercentEncodedHost);
    }
    let host = parse_name(host)?;
    Ok((host, parse_port(port)?))
}

/// A port: 1 to 5 ASCII digits, value ≤ 65535.
fn parse_port(text: Option<&str>) -> Result<Option<u16>, UrlError> {
    let Some(text) = text else {
        return Ok(None);
    };
    if text.is_empty() || text.len() > 5 {
        return Err(UrlError::BadPort);
    }
    let mut value: u32 = 0;
    for b in text.bytes() {
        let digit = char::from(b).to_digit(10).ok_or(UrlError::BadPort)?;
        value = value.checked_mul(10).and_then(|v| v.checked_add(digit)).ok_or(UrlError::BadPort)?;
    }
    u16::try_from(value).map(Some).map_err(|_| UrlError::BadPort)
}

/// A host without brackets, trailing dot and `%`: IPv4 literal or domain.
fn parse_name(host: &str) -> Result<Host<'_>, UrlError> {
    if !host.is_ascii() && host.chars().any(folds_to_ascii) {
        return Err(UrlError::BadHost);
    }
    if looks_like_ipv4(host) {
        return parse_ipv4(host).map(Host::Ipv4).ok_or(UrlError::BadHost);
    }
    if host.len() > MAX_DOMAIN {
        return Err(UrlError::BadHost);
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(UrlError::BadHost);
        }
        if !label.chars().all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(UrlError::BadHost);
        }
    }
    Ok(Host::Domain(host))
}

/// Non-ASCII characters that IDNA (UTS #46) maps to ASCII, ignores, or that
/// imitate URL punctuation: fullwidth and halfwidth forms (`１２７`,
/// `ｅxample`), dot look-alikes (`。`), super/subscripts, enclosed and
/// mathematical alphanumerics, ligatures, letterlike symbols (Kelvin sign),
/// Roman numerals, the long s, variation selectors and similar. A browser
/// or `curl` would fold such a host into a different (possibly numeric)
/// ASCII host, so it is refused instead.
fn folds_to_ascii(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}'..='\u{00BF}' // Latin-1 punctuation, superscripts, fractions, ª º
            | '\u{017F}' // long s → s
            | '\u{02B0}'..='\u{02FF}' // modifier letters
            | '\u{034F}' // combining grapheme joiner (ignored)
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors (ignored)
            | '\u{1D2C}'..='\u{1D6A}' // modifier small letters
            | '\u{2000}'..='\u{206F}' // general punctuation: dot leaders, fraction slash, …
            | '\u{2070}'..='\u{209F}' // superscripts and subscripts
            | '\u{2100}'..='\u{218F}' // letterlike symbols, number forms
            | '\u{2215}' // division slash
            | '\u{2460}'..='\u{24FF}' // enclosed alphanumerics
            | '\u{2776}'..='\u{2793}' // dingbat circled digits
            | '\u{3000}'..='\u{303F}' // CJK punctuation, including 。
            | '\u{3164}' // Hangul filler
            | '\u{3200}'..='\u{33FF}' // enclosed CJK, CJK compatibility
            | '\u{FB00}'..='\u{FB4F}' // ligatures
            | '\u{FE00}'..='\u{FE0F}' // variation selectors (ignored)
            | '\u{FE10}'..='\u{FE1F}' // vertical forms
            | '\u{FE30}'..='\u{FE6F}' // CJK compatibility and small form variants
            | '\u{FF00}'..='\u{FFEF}' // fullwidth and halfwidth forms
            | '\u{1D400}'..='\u{1D7FF}' // mathematical alphanumerics
            | '\u{1F100}'..='\u{1F1FF}' // enclosed alphanumeric supplement
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// Whether a host must be read as an IPv4 address: its last label
/// is a number (decimal, or `0x` hexadecimal — the WHATWG "ends in a
/// number" rule), or every label starts with a digit and holds only hex
/// digits and `x` (`0x7f.0.0.1a`, `1e2`).
fn looks_like_ipv4(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or("");
    let last_is_number = match last.as_bytes() {
        [] => false,
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        digits => digits.iter().all(u8::is_ascii_digit),
    };
    last_is_number
        || host.split('.').all(|label| {
            label.as_bytes().first().is_some_and(u8::is_ascii_digit)
                && label.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x' || b == b'X')
        })
}

/// One `inet_aton` number: decimal, `0x` hexadecimal (`0x` alone is 0, as
/// in WHATWG), or octal with a leading `0`.
fn parse_ipv4_number(part: &str) -> Option<u32> {
    let (digits, radix) = match part.as_bytes() {
        [] => return None,
        [b'0', b'x' | b'X', hex @ ..] => (hex, 16),
        [b'0', octal @ ..] if !octal.is_empty() => (octal, 8),
        decimal => (decimal, 10),
    };
    let mut value: u32 = 0;
    for &b in digits {
        let digit = char::from(b).to_digit(radix)?;
        value = value.checked_mul(radix)?.checked_add(digit)?;
    }
    Some(value)
}

/// IPv4 in every `inet_aton` form: `a.b.c.d`, `a.b.c` (c is 16 bits),
/// `a.b` (b is 24 bits), `a` (32 bits); each part decimal, hex or octal.
fn parse_ipv4(host: &str) -> Option<[u8; 4]> {
    let mut parts = [0u32; 4];
    let mut count = 0usize;
    for part in host.split('.') {
        *parts.get_mut(count)? = parse_ipv4_number(part)?;
        count = count.checked_add(1)?;
    }
    let [a, b, c, d] = parts;
    let value = match count {
        1 => a,
        2 if a <= 0xff && b <= 0xff_ffff => (a << 24) | b,
        3 if a <= 0xff && b <= 0xff && c <= 0xffff => (a << 24) | (b << 16) | c,
        4 if a <= 0xff && b <= 0xff && c <= 0xff && d <= 0xff => (a << 24) | (b << 16) | (c << 8) | d,
        _ => return None,
    };
    Some(value.to_be_bytes())
}

/// IPv6 text without brackets (the WHATWG IPv6 parser): hex groups, one
/// `::`, an optional dotted-decimal IPv4 tail. Zone ids are not accepted.
fn parse_ipv6(text: &str) -> Option<[u16; 8]> {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut groups = [0u16; 8];
    let mut piece = 0usize;
    let mut compress: Option<usize> = None;
    let mut p = 0usize;
    if at(0) == Some(b':') {
        if at(1) != Some(b':') {
            return None;
        }
        p = 2;
        piece = 1;
        compress = Some(1);
    }
    while let Some(c) = at(p) {
        if piece >= 8 {
            return None;
        }
        if c == b':' {
            if compress.is_some() {
                return None;
            }
            p = p.checked_add(1)?;
            piece = piece.checked_add(1)?;
            compress = Some(piece);
            continue;
        }
        let mut value: u32 = 0;
        let mut len = 0usize;
        while len < 4 {
            let Some(digit) = at(p).and_then(|b| char::from(b).to_digit(16)) else {
                break;
            };
            value = value.checked_mul(16)?.checked_add(digit)?;
            p = p.checked_add(1)?;
            len = len.checked_add(1)?;
        }
        match at(p) {
            Some(b'.') => {
                if len == 0 || piece > 6 {
                    return None;
                }
                let start = p.checked_sub(len)?;
                let [a, b, c, d] = parse_dotted_decimal(bytes.get(start..)?)?;
                *groups.get_mut(piece)? = u16::from_be_bytes([a, b]);
                *groups.get_mut(piece.checked_add(1)?)? = u16::from_be_bytes([c, d]);
                piece = piece.checked_add(2)?;
                break;
            }
            Some(b':') => {
                p = p.checked_add(1)?;
                at(p)?;
            }
            Some(_) => return None,
            None => {}
        }
        *groups.get_mut(piece)? = u16::try_from(value).ok()?;
        piece = piece.checked_add(1)?;
    }
    match compress {
        None => (piece == 8).then_some(groups),
        Some(start) => {
            // Move the groups after `::` to the end; zeros fill the gap.
            let gap = 8usize.checked_sub(piece)?;
            let mut out = [0u16; 8];
            for i in 0..start {
                *out.get_mut(i)? = *groups.get(i)?;
            }
            for i in start..piece {
                *out.get_mut(i.checked_add(gap)?)? = *groups.get(i)?;
            }
            Some(out)
        }
    }
}

/// Exactly four decimal numbers 0–255 separated by dots, without leading
/// zeros (the IPv4 tail of an IPv6 literal).
fn parse_dotted_decimal(text: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut count = 0usize;
    for part in text.split(|&b| b == b'.') {
        let slot = out.get_mut(count)?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.first() == Some(&b'0')) {
            return None;
        }
        let mut value: u32 = 0;
        for &b in part {
            let digit = char::from(b).to_digit(10)?;
            value = value.checked_mul(10)?.checked_add(digit)?;
        }
        *slot = u8::try_from(value).ok()?;
        count = count.checked_add(1)?;
    }
    (count == 4).then_some(out)
}

fn ipv4_class(ip: [u8; 4]) -> IpClass {
    match ip {
        [0, ..] => IpClass::Unspecified,
        [127, ..] => IpClass::Loopback,
        [10, ..] | [192, 168, ..] => IpClass::Private,
        [172, b, ..] if b & 0xf0 == 16 => IpClass::Private,
        [100, b, ..] if b & 0xc0 == 64 => IpClass::Private,
        [169, 254, ..] => IpClass::LinkLocal,
        [255, 255, 255, 255] => IpClass::Broadcast,
        [a, ..] if a & 0xf0 == 224 => IpClass::Multicast,
        [a, ..] if a & 0xf0 == 240 => IpClass::Reserved,
        [192, 0, 0 | 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => IpClass::Reserved,
        [198, b, ..] if b & 0xfe == 18 => IpClass::Reserved,
        _ => IpClass::Public,
    }
}

fn ipv6_class(groups: [u16; 8]) -> IpClass {
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        ipv4_class([a, b, c, d])
    };
    match groups {
        [0, 0, 0, 0, 0, 0, 0, 0] => IpClass::Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => IpClass::Loopback,
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => {
            embedded(hi, lo)
        }
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0x2001, 0x0db8, ..] | [0x0100, 0, 0, 0, ..] => IpClass::Reserved,
        [a, ..] if a & 0xfe00 == 0xfc00 || a & 0xffc0 == 0xfec0 => IpClass::Private,
        [a, ..] if a & 0xffc0 == 0xfe80 => IpClass::LinkLocal,
        [a, ..] if a & 0xff00 == 0xff00 => IpClass::Multicast,
        _ => IpClass::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Host<'_> {
        parse(url).unwrap_or_else(|e| panic!("{url}: {e:?}")).host
    }

    fn class(url: &str) -> Option<IpClass> {
        host(url).ip_class()
    }

    fn err(url: &str) -> UrlError {
        parse(url).expect_err(url)
    }

    #[test]
    fn splits_the_parts() {
        let u = parse("https://user:pw@host:8443/p?q#f").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.userinfo, Some("user:pw"));
        assert_eq!(u.host, Host::Domain("host"));
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.path, "/p?q#f");
        assert_eq!(u.effective_port(), Some(8443));

        let u = parse("HTTPS://Example.COM").unwrap();
        assert_eq!(u.scheme, "HTTPS");
        assert!(u.scheme_is("https"));
        assert!(!u.scheme_is("http"));
        assert_eq!(u.host, Host::Domain("Example.COM"));
        assert_eq!((u.port, u.path, u.userinfo), (None, "", None));
        assert_eq!(u.effective_port(), Some(443));

        let u = parse("  http://example.com?x=1  ").unwrap();
        assert_eq!((u.host, u.path), (Host::Domain("example.com"), "?x=1"));
        assert_eq!(parse("http://example.com#frag").unwrap().path, "#frag");
        assert_eq!(parse("http://example.com./").unwrap().host, Host::Domain("example.com"));
        assert_eq!(parse("http://a_b-c.example/").unwrap().host, Host::Domain("a_b-c.example"));
        assert_eq!(parse("git+ssh://git@github.com/x").unwrap().scheme, "git+ssh");
        let u = parse("ftp://x").unwrap();
        assert!(u.scheme_is("ftp"));
        assert_eq!((u.host, u.effective_port()), (Host::Domain("x"), None));
        assert_eq!(parse("http://x:0/").unwrap().port, Some(0));
        assert_eq!(parse("http://x:65535/").unwrap().port, Some(65535));
        assert_eq!(parse("http://x:00080/").unwrap().port, Some(80));
    }

    #[test]
    fn userinfo_is_before_the_last_at() {
        let u = parse("https://good.com@evil.com/").unwrap();
        assert_eq!((u.userinfo, u.host), (Some("good.com"), Host::Domain("evil.com")));
        let u = parse("https://a@b@evil.com:81/x@y").unwrap();
        assert_eq!((u.userinfo, u.host, u.port, u.path), (Some("a@b"), Host::Domain("evil.com"), Some(81), "/x@y"));
        assert_eq!(parse("https://@x/").unwrap().userinfo, Some(""));
        assert_eq!(parse("https://u:p%40@x/").unwrap().userinfo, Some("u:p%40"));
        // The authority ends at `/`, `?` or `#`: these hosts are `good.com`.
        assert_eq!(parse("https://good.com/@evil.com").unwrap().host, Host::Domain("good.com"));
        assert_eq!(parse("https://good.com?@evil.com").unwrap().host, Host::Domain("good.com"));
        assert_eq!(parse("https://good.com#@evil.com").unwrap().host, Host::Domain("good.com"));
    }

    #[test]
    fn ipv4_in_every_inet_aton_form() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0X7F000001/",
            "http://0x7F.0.0.1/",
            "http://0177.0.0.01/",
            "http://0177.0000.0.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://127.0.1/",
            "http://127.0.0.1./",
            "http://0x7f.0x0.0x0.0x1/",
            "http://0x00000000007f.1/",
            "http://user@127.1:8080/",
        ] {
            assert_eq!(host(url), Host::Ipv4([127, 0, 0, 1]), "{url}");
            assert_eq!(class(url), Some(IpClass::Loopback), "{url}");
        }
        assert_eq!(host("http://1.2.3/"), Host::Ipv4([1, 2, 0, 3]));
        assert_eq!(host("http://1.2.65535/"), Host::Ipv4([1, 2, 255, 255]));
        assert_eq!(host("http://1.16777215/"), Host::Ipv4([1, 255, 255, 255]));
        assert_eq!(host("http://4294967295/"), Host::Ipv4([255, 255, 255, 255]));
        assert_eq!(host("http://0/"), Host::Ipv4([0, 0, 0, 0]));
        assert_eq!(host("http://0x/"), Host::Ipv4([0, 0, 0, 0]));
        assert_eq!(host("http://00/"), Host::Ipv4([0, 0, 0, 0]));
        assert_eq!(host("http://3232235521/"), Host::Ipv4([192, 168, 0, 1]));
        assert_eq!(host("http://0xa9fea9fe/"), Host::Ipv4([169, 254, 169, 254]));
        for bad in [
            "http://1.2.3.4.5/",
            "http://256.1.1.1/",
            "http://1.2.3.256/",
            "http://1.2.65536/",
            "http://1.16777216/",
            "http://256.1/",
            "http://4294967296/",
            "http://99999999999999999999999/",
            "http://08.0.0.1/",
            "http://0x7g.0.0.1/",
            "http://1..2/",
            "http://.1.2.3/",
            "http://example.123/",
            "http://example.0x1f/",
            "http://0x7f.0.0.1a/",
            "http://1e2/",
            "http://127.0.0.1../",
            "http://0xfffffffff/",
        ] {
            assert_eq!(err(bad), UrlError::BadHost, "{bad}");
        }
        // Hexadecimal-looking words are domains.
        assert_eq!(host("http://cafe.babe/"), Host::Domain("cafe.babe"));
        assert_eq!(host("http://deadbeef/"), Host::Domain("deadbeef"));
        assert_eq!(host("http://1.2.3.4.com/"), Host::Domain("1.2.3.4.com"));
        assert_eq!(host("http://0xbad.ad/"), Host::Domain("0xbad.ad"));
    }

    #[test]
    fn strict_dotted_quads_agree_with_std() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let text = rng.string(b"0123456789.....", 12);
            if let Ok(std_ip) = text.parse::<std::net::Ipv4Addr>() {
                accepted += 1;
                assert_eq!(parse_ipv4(&text), Some(std_ip.octets()), "{text}");
                assert_eq!(parse(&format!("http://{text}/")).unwrap().host, Host::Ipv4(std_ip.octets()), "{text}");
            }
        }
        assert!(accepted > 50, "{accepted}");
    }

    #[test]
    fn ipv6_literals() {
        let u = parse("http://[::1]:80/").unwrap();
        assert_eq!((u.host, u.port, u.path), (Host::Ipv6([0, 0, 0, 0, 0, 0, 0, 1]), Some(80), "/"));
        assert_eq!(class("http://[::1]/"), Some(IpClass::Loopback));
        assert_eq!(host("http://[1:2:3:4:5:6:7:8]"), Host::Ipv6([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(host("http://[2001:DB8::1]"), Host::Ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]));
        assert_eq!(host("http://[1::]"), Host::Ipv6([1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(host("http://[1::2:3]"), Host::Ipv6([1, 0, 0, 0, 0, 0, 2, 3]));
        assert_eq!(host("http://[::]"), Host::Ipv6([0; 8]));
        assert_eq!(host("http://[::ffff:127.0.0.1]"), Host::Ipv6([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]));
        assert_eq!(class("http://[::ffff:127.0.0.1]"), Some(IpClass::Loopback));
        assert_eq!(class("http://[::ffff:10.0.0.1]"), Some(IpClass::Private));
        assert_eq!(class("http://[::ffff:a9fe:a9fe]"), Some(IpClass::LinkLocal));
        assert_eq!(class("http://[::ffff:8.8.8.8]"), Some(IpClass::Public));
        assert_eq!(class("http://[64:ff9b::169.254.169.254]"), Some(IpClass::LinkLocal));
        assert_eq!(class("http://[2002:7f00:1::]"), Some(IpClass::Loopback));
        assert_eq!(class("http://[::]"), Some(IpClass::Unspecified));
        assert_eq!(class("http://[fd00::1]"), Some(IpClass::Private));
        assert_eq!(class("http://[fe80::1]"), Some(IpClass::LinkLocal));
        assert_eq!(class("http://[ff02::1]"), Some(IpClass::Multicast));
        assert_eq!(class("http://[2001:db8::1]"), Some(IpClass::Reserved));
        assert_eq!(class("http://[2606:4700::1111]"), Some(IpClass::Public));
        for bad in [
            "http://[fe80::1%25eth0]/",
            "http://[fe80::1%eth0]/",
            "http://[::1/",
            "http://[]/",
            "http://[:::]/",
            "http://[1:2:3:4:5:6:7:8:9]/",
            "http://[1:2:3:4:5:6:7]/",
            "http://[1::2::3]/",
            "http://[12345::]/",
            "http://[::g]/",
            "http://[1:]/",
            "http://[:1]/",
            "http://[::1.2.3]/",
            "http://[::1.2.3.04]/",
            "http://[::1.2.3.256]/",
            "http://[1.2.3.4]/",
            "http://[::1.2.3.4:1]/",
            "http://[+1::]/",
        ] {
            assert_eq!(err(bad), UrlError::BadIpv6, "{bad}");
        }
        assert_eq!(err("http://[::1]x/"), UrlError::BadHost);
        assert_eq!(err("http://[::1]:/"), UrlError::BadPort);
        assert_eq!(err("http://[::1]:65536/"), UrlError::BadPort);
        assert_eq!(err("http://::1/"), UrlError::BadHost);
    }

    #[test]
    fn ipv6_agrees_with_std() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let text = rng.string(b"0123f::::..1aF", 24);
            let ours = parse_ipv6(&text);
            match text.parse::<std::net::Ipv6Addr>() {
                Ok(ip) => {
                    accepted += 1;
                    assert_eq!(ours, Some(ip.segments()), "{text}");
                }
                Err(_) => assert_eq!(ours, None, "{text}"),
            }
        }
        assert!(accepted > 100, "{accepted}");
        for text in ["::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4"] {
            let ip: std::net::Ipv6Addr = text.parse().unwrap();
            assert_eq!(parse_ipv6(text), Some(ip.segments()), "{text}");
        }
    }

    #[test]
    fn classifies_ipv4() {
        assert_eq!(class("http://2130706433/"), Some(IpClass::Loopback));
        assert_eq!(class("http://169.254.169.254/latest/meta-data"), Some(IpClass::LinkLocal));
        assert_eq!(class("http://10.0.0.5"), Some(IpClass::Private));
        assert_eq!(class("http://172.16.0.1"), Some(IpClass::Private));
        assert_eq!(class("http://172.31.255.255"), Some(IpClass::Private));
        assert_eq!(class("http://172.32.0.1"), Some(IpClass::Public));
        assert_eq!(class("http://192.168.1.1"), Some(IpClass::Private));
        assert_eq!(class("http://100.64.0.1"), Some(IpClass::Private));
        assert_eq!(class("http://100.127.255.255"), Some(IpClass::Private));
        assert_eq!(class("http://100.128.0.1"), Some(IpClass::Public));
        assert_eq!(class("http://0.0.0.0"), Some(IpClass::Unspecified));
        assert_eq!(class("http://0"), Some(IpClass::Unspecified));
        assert_eq!(class("http://224.0.0.1"), Some(IpClass::Multicast));
        assert_eq!(class("http://239.255.255.255"), Some(IpClass::Multicast));
        assert_eq!(class("http://255.255.255.255"), Some(IpClass::Broadcast));
        assert_eq!(class("http://240.0.0.1"), Some(IpClass::Reserved));
        assert_eq!(class("http://192.0.2.1"), Some(IpClass::Reserved));
        assert_eq!(class("http://198.18.0.1"), Some(IpClass::Reserved));
        assert_eq!(class("http://8.8.8.8"), Some(IpClass::Public));
        assert_eq!(class("http://example.com"), None);
        assert!(host("http://1.1.1.1").is_ip());
        assert!(!host("http://example.com").is_ip());
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(err("javascript:alert(1)"), UrlError::NoScheme);
        assert_eq!(err("javascript:alert('http://x')"), UrlError::NoScheme);
        assert_eq!(err(""), UrlError::NoScheme);
        assert_eq!(err("   "), UrlError::NoScheme);
        assert_eq!(err("example.com"), UrlError::NoScheme);
        assert_eq!(err("example.com:8080/x"), UrlError::NoScheme);
        assert_eq!(err("//example.com/"), UrlError::NoScheme);
        assert_eq!(err("://example.com/"), UrlError::NoScheme);
        assert_eq!(err("http:/example.com/"), UrlError::NoScheme);
        assert_eq!(err("1http://x/"), UrlError::BadScheme);
        assert_eq!(err("h_t://x/"), UrlError::BadScheme);
        assert_eq!(err("a/b://x/"), UrlError::BadScheme);
        assert_eq!(err("https://"), UrlError::EmptyHost);
        assert_eq!(err("https:///x"), UrlError::EmptyHost);
        assert_eq!(err("https://user@/x"), UrlError::EmptyHost);
        assert_eq!(err("https://:80/"), UrlError::EmptyHost);
        assert_eq!(err("https://./"), UrlError::EmptyHost);
        assert_eq!(err("https://a:99999"), UrlError::BadPort);
        assert_eq!(err("https://a:65536"), UrlError::BadPort);
        assert_eq!(err("https://a:000080"), UrlError::BadPort);
        assert_eq!(err("https://a:"), UrlError::BadPort);
        assert_eq!(err("https://a:+80"), UrlError::BadPort);
        assert_eq!(err("https://a:8o"), UrlError::BadPort);
        assert_eq!(err("https://%65vil.com/"), UrlError::PercentEncodedHost);
        assert_eq!(err("https://127.0.0.%31/"), UrlError::PercentEncodedHost);
        assert_eq!(err("https://a b.com/"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/x y"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/\tx"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com\n.evil/"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/\u{7f}"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/\u{85}"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/\u{a0}"), UrlError::ControlCharacter);
        assert_eq!(err("https://a.com/\u{3000}"), UrlError::ControlCharacter);
        assert_eq!(err("https://git\u{200b}hub.com/"), UrlError::ControlCharacter);
        assert_eq!(err("https://moc.\u{202e}evil/"), UrlError::ControlCharacter);
        assert_eq!(err("https://good.com\\@evil.com/"), UrlError::BadHost);
        assert_eq!(err("https://evil.com\\.good.com/"), UrlError::BadHost);
        assert_eq!(err("https://a..com/"), UrlError::BadHost);
        assert_eq!(err("https://a.com../"), UrlError::BadHost);
        assert_eq!(err("https://a*.com/"), UrlError::BadHost);
        assert_eq!(err("https://a:b:80/"), UrlError::BadHost);
        assert_eq!(err(&format!("https://{}.com/", "a".repeat(64))), UrlError::BadHost);
        assert_eq!(err(&format!("https://{}com/", "a.".repeat(127))), UrlError::BadHost);
        assert!(parse(&format!("https://{}.com/", "a".repeat(63))).is_ok());
        assert!(parse(&format!("https://{}com/", "a.".repeat(125))).is_ok());
        assert_eq!(err(&format!("https://a.com/{}", "x".repeat(MAX_URL))), UrlError::TooLong);
        // A backslash after the authority is part of the path.
        assert_eq!(parse("https://a.com/\\x").unwrap().path, "/\\x");
    }

    #[test]
    fn unicode_hosts() {
        let h = host("https://пример.рф/");
        assert_eq!(h, Host::Domain("пример.рф"));
        assert!(!h.is_ascii_domain());
        let h = host("https://аpple.com/"); // Cyrillic а
        assert!(!h.is_ascii_domain());
        assert!(host("https://apple.com/").is_ascii_domain());
        assert!(host("https://[::1]/").is_ascii_domain());
        assert!(host("https://xn--pple-43d.com/").has_punycode_label());
        assert!(host("https://a.XN--p1ai/").has_punycode_label());
        assert!(!host("https://apple.com/").has_punycode_label());
        // Would fold to ASCII (an IP address, or another domain).
        for bad in [
            "https://１２７.０.０.１/",
            "https://127。0。0。1/",
            "https://127\u{ff0e}0\u{ff0e}0\u{ff0e}1/",
            "https://ｅxample.com/",
            "https://\u{1d7cf}27.0.0.1/",
            "https://\u{2460}.com/",
            "https://\u{17f}tripe.com/",
            "https://\u{212a}ey.com/",
            "https://git\u{34f}hub.com/",
            "https://github.com\u{ff0f}.evil.com/",
            "https://github.com\u{2024}evil.com/",
            "https://é.1/",
            "https://é.0x1/",
        ] {
            assert_eq!(err(bad), UrlError::BadHost, "{bad}");
        }
    }

    #[test]
    fn matches_domains() {
        assert!(domain_matches("github.com", "github.com"));
        assert!(domain_matches("api.github.com", "github.com"));
        assert!(domain_matches("a.b.github.com", "github.com"));
        assert!(domain_matches("GitHub.COM.", "github.com"));
        assert!(domain_matches("github.com", "GITHUB.com."));
        assert!(!domain_matches("evilgithub.com", "github.com"));
        assert!(!domain_matches("github.com.evil.io", "github.com"));
        assert!(!domain_matches("github.co", "github.com"));
        assert!(!domain_matches("com", "github.com"));
        assert!(!domain_matches(".github.com", "github.com"));
        assert!(!domain_matches("github.com", "*.github.com"));
        assert!(domain_matches("a.github.com", "*.github.com"));
        assert!(domain_matches("a.b.github.com", "*.github.com"));
        assert!(!domain_matches("agithub.com", "*.github.com"));
        assert!(!domain_matches("x", ""));
        assert!(!domain_matches("", "x"));
        assert!(!domain_matches("x", "*."));
        assert!(!domain_matches("x", "*"));
        assert!(!domain_matches("a.github\u{3002}com", "github.com"));
        assert!(!domain_matches("é.github.com", "hub.com"));
        assert!(domain_matches("é.github.com", "github.com"));
        assert_eq!(default_port("http"), Some(80));
        assert_eq!(default_port("HTTPS"), Some(443));
        assert_eq!(default_port("ftp"), None);
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, alphabet: &[u8], max_len: u64) -> String {
            let len = self.next() % (max_len + 1);
            (0..len).map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize])).collect()
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let pieces = [
            "http", "https", "://", ":", "/", "//", "@", "[", "]", "::", "ffff", ".", "0x", "7f", "1", "0", "255", "%",
            "%25", "?", "#", "\\", " ", "\t", "é", "。", "１", "\u{202e}", "a", "-", "_", "99999", "xn--",
        ];
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..rng.next() % 24 {
                text.push_str(pieces[(rng.next() % pieces.len() as u64) as usize]);
            }
            if let Ok(url) = parse(&text) {
                // Every part is a piece of the input; the host holds no
                // delimiter.
                assert!(text.contains(url.scheme) && text.contains(url.path), "{text}");
                if let Host::Domain(domain) = url.host {
                    assert!(!domain.is_empty() && text.contains(domain), "{text}");
                    assert!(!domain.contains(['@', ':', '/', '\\', '%', '[', ']', '?', '#', ' ']), "{text}");
                }
            }
        }
        for _ in 0..5000 {
            let bytes: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
