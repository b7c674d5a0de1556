//! The fixed dictionary SPDY/3 primes its zlib header compression with (SPDY/3 draft,
//! section 2.6.10.1). Both directions of every connection use it; a peer whose header blocks were
//! compressed against any other bytes cannot be read.

use std::sync::LazyLock;

/// Header names and common values, each written as SPDY/3 writes a name: a 32-bit big-endian
/// length, then the bytes.
const LENGTH_PREFIXED: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// Status codes, reason phrases, dates and content values, appended as plain text.
const PLAIN_TAIL: &[&str] = &[
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
    " 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
];

/// The SPDY/3 header compression dictionary, 1423 bytes.
pub static SPDY3_DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut dictionary = Vec::with_capacity(1423);
    for word in LENGTH_PREFIXED {
        let length = u32::try_from(word.len()).unwrap_or(u32::MAX);
        dictionary.extend_from_slice(&length.to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    for text in PLAIN_TAIL {
        dictionary.extend_from_slice(text.as_bytes());
    }
    dictionary
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_the_specified_length_and_ends() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        assert_eq!(&SPDY3_DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(SPDY3_DICTIONARY.ends_with(b",enq=0."));
    }
}
