//! Percent-encoding for the parts of a URL a plugin builds from parameters
//! (RFC 3986): a path segment, a query. Everything but the unreserved
//! characters (`A-Z a-z 0-9 - . _ ~`) is encoded, so a value can never add a
//! segment, a query or a fragment to the URL it goes into.

/// Encodes `value` for one path segment (`/` included is encoded).
pub fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Encodes one query component (a name or a value).
pub fn query_component(value: &str) -> String {
    path_segment(value)
}

/// Encodes `name=value` pairs as a query string, without the leading `?`.
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{}={}", query_component(name), query_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_escape_its_part_of_the_url() {
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(path_segment("zone-1.x_y~"), "zone-1.x_y~");
        assert_eq!(path_segment("é"), "%C3%A9");
        assert_eq!(query([("q", "a&b=c"), ("n", "1")]), "q=a%26b%3Dc&n=1");
    }
}
