//! Writing stored objects into responses without decoding them.
//!
//! The registry stores each object as compact JSON without `metadata.resourceVersion` (the
//! store's `mod_revision` is the resourceVersion). Decoding every object of a large list into a
//! `serde_json::Value` tree only to add that one field and encode it again dominates a list's
//! time and memory, so a plain JSON list instead copies the stored bytes and splices the field
//! in where decoding would have put it: as the last member of `metadata`. Serializing the same
//! `Value` with `preserve_order` gives the same bytes, which the tests check.

use skiff_store::Revision;

/// Where `resourceVersion` goes in one stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataEnd {
    /// Offset of the closing brace of the top-level `metadata` object.
    pub offset: usize,
    /// Whether `metadata` already has members, so the new one needs a separating comma.
    pub has_members: bool,
}

/// Finds the end of the top-level `metadata` object of a stored JSON object.
///
/// Returns `None` when the bytes are not an object, have no `metadata` object, already carry a
/// `metadata.resourceVersion`, or spell a key with escapes: each is a shape the caller must
/// handle by decoding instead, since a splice would not match what decoding produces.
pub fn metadata_end(json: &[u8]) -> Option<MetadataEnd> {
    let mut scanner = Scanner { json, at: 0 };
    scanner.expect(b'{')?;
    loop {
        scanner.skip_whitespace();
        if scanner.peek()? == b'}' {
            return None;
        }
        let key = scanner.plain_string()?;
        scanner.skip_whitespace();
        scanner.expect(b':')?;
        scanner.skip_whitespace();
        if key == b"metadata" {
            return scanner.metadata_object();
        }
        scanner.skip_value()?;
        scanner.skip_whitespace();
        match scanner.next()? {
            b',' => continue,
            _ => return None,
        }
    }
}

/// Appends `stored` to `out` with `"resourceVersion":"<revision>"` added as the last member of
/// its `metadata`. Returns false, leaving `out` untouched, when [`metadata_end`] finds no place
/// for it.
pub fn write_with_resource_version(stored: &[u8], revision: Revision, out: &mut Vec<u8>) -> bool {
    let Some(end) = metadata_end(stored) else {
        return false;
    };
    let (before, after) = stored.split_at(end.offset);
    out.reserve(stored.len() + 40);
    out.extend_from_slice(before);
    if end.has_members {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    out.extend_from_slice(after);
    true
}

/// A forward-only reader over JSON bytes that knows just enough to skip values.
struct Scanner<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.json.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// Reads a string without escapes and returns its contents; `None` for an escaped one.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => {
                    let json: &'a [u8] = self.json;
                    return json.get(start..self.at - 1);
                }
                b'\\' => return None,
                _ => {}
            }
        }
    }

    /// Skips a string whose opening quote has been consumed.
    fn skip_string_body(&mut self) -> Option<()> {
        loop {
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Skips one value of any kind.
    fn skip_value(&mut self) -> Option<()> {
        match self.next()? {
            b'"' => self.skip_string_body(),
            b'{' | b'[' => {
                let mut depth = 1usize;
                while depth > 0 {
                    match self.next()? {
                        b'"' => self.skip_string_body()?,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                }
                Some(())
            }
            b',' | b'}' | b']' | b':' => None,
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// Walks the members of `metadata` and reports where it ends.
    fn metadata_object(&mut self) -> Option<MetadataEnd> {
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            return Some(MetadataEnd {
                offset: self.at,
                has_members: false,
            });
        }
        loop {
            self.skip_whitespace();
            if self.plain_string()? == b"resourceVersion" {
                return None;
            }
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            self.skip_value()?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    return Some(MetadataEnd {
                        offset: self.at,
                        has_members: true,
                    })
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// What the decoding path produces: parse, set the field, encode.
    fn decoded_then_encoded(stored: &[u8], revision: Revision) -> Vec<u8> {
        let mut obj: Value = serde_json::from_slice(stored).expect("valid sample");
        crate::meta::set(&mut obj, "resourceVersion", json!(revision.to_string()));
        serde_json::to_vec(&obj).expect("encodes")
    }

    #[test]
    fn splice_matches_decoding_byte_for_byte() {
        let samples = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns",
                "labels": {"app": "x", "weird\"key": "}{]["}}, "data": {"k": "v\\\"}"}}),
            json!({"metadata": {}, "kind": "Namespace"}),
            json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "args": ["{", "]", "\"metadata\""]}],
                "n": -1.5e3, "t": true, "z": null}, "metadata": {"name": "p", "uid": "u"}, "status": {}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
                "annotations": {"note": "ünïcødé \u{1F600} \n\t"}, "finalizers": ["a/b"]},
                "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "d"}}}}}),
        ];
        for sample in samples {
            let stored = serde_json::to_vec(&sample).expect("encodes");
            let mut spliced = Vec::new();
            assert!(
                write_with_resource_version(&stored, 4711, &mut spliced),
                "{sample}"
            );
            assert_eq!(
                String::from_utf8_lossy(&spliced),
                String::from_utf8_lossy(&decoded_then_encoded(&stored, 4711)),
            );
        }
    }

    #[test]
    fn shapes_a_splice_cannot_serve_are_refused() {
        let cases: [(&str, &[u8]); 7] = [
            ("no metadata", br#"{"kind":"X","spec":{"metadata":{}}}"#),
            ("metadata not an object", br#"{"metadata":"x"}"#),
            (
                "resourceVersion already present",
                br#"{"metadata":{"name":"a","resourceVersion":"3"}}"#,
            ),
            ("escaped key", br#"{"meta\u0064ata":{"name":"a"}}"#),
            ("not an object", br#"["metadata",{}]"#),
            ("truncated", br#"{"metadata":{"name":"a""#),
            ("empty", b""),
        ];
        for (name, stored) in cases {
            let mut out = b"kept".to_vec();
            assert!(!write_with_resource_version(stored, 1, &mut out), "{name}");
            assert_eq!(out, b"kept", "{name}: nothing written on refusal");
        }
    }

    #[test]
    fn metadata_end_reports_the_closing_brace() {
        let stored = br#"{ "kind" : "X" , "metadata" : { "name" : "a" } }"#;
        let end = metadata_end(stored).expect("found");
        assert_eq!(stored[end.offset], b'}');
        assert_eq!(end.offset, 45);
        assert!(end.has_members);
        let empty = br#"{"metadata":{ }}"#;
        assert_eq!(
            metadata_end(empty),
            Some(MetadataEnd {
                offset: 14,
                has_members: false
            })
        );
    }
}
