//! Nesting limits checked before a body is parsed.
//!
//! Parsing a deeply nested document costs far more than reading it (YAML parsers keep a stack
//! of indentation levels and re-examine it), so an attacker could stall the server with one
//! small request. These scanners measure nesting in one linear pass and stop at Kubernetes'
//! limits, so such a body is refused in the time it takes to read it.
//!
//! Kubernetes' limits: its YAML decoder refuses more than 10000 nested block collections or
//! 10000 nested flow collections ("exceeded max depth of 10000"), and its JSON decoder more than
//! 10000 nested arrays and objects ("exceeded max depth").
//!
//! Skiff accepts less than that: [`MAX_STORED_DEPTH`] levels of JSON, the most `serde_json`
//! reads back by default, and [`MAX_YAML_DEPTH`] levels of YAML, which its parser walks with
//! far larger stack frames. Every stored object is read back with `serde_json` and walked
//! recursively by admission, patching and printing; raising the limits would trade a clear 400
//! for a stack overflow somewhere else. No Kubernetes object comes near them (a Pod's deepest
//! field is about a dozen levels down).

/// Kubernetes' decoders refuse JSON and YAML nested more deeply than this.
pub const KUBERNETES_MAX_DEPTH: usize = 10_000;

/// The deepest nesting Skiff stores: `serde_json` refuses one level more (its recursion limit
/// of 128 counts the level that fails), and every stored object is read back with it.
pub const MAX_STORED_DEPTH: usize = 127;

/// The deepest YAML Skiff parses: the YAML parser's own default budget, which keeps its
/// recursion (some 20 KiB of stack a level in a debug build) well inside a 2 MiB thread stack.
/// It is below [`MAX_STORED_DEPTH`], so whatever YAML gives is stored and read back.
pub const MAX_YAML_DEPTH: usize = 64;

/// Where a YAML text first nests past `limit` block collections or `limit` flow collections:
/// the 0-based line, or `None` when it never does.
///
/// The count follows the YAML scanner's rules closely enough for a limit (an indentation level
/// opens a block collection, so does each `- ` of a compact sequence, and `[`/`{` open flow
/// collections outside quoted scalars and comments); block scalar contents are skipped.
pub fn yaml_excess_line(text: &[u8], limit: usize) -> Option<usize> {
    let mut scan = YamlScan::default();
    for (index, raw_line) in text.split(|b| *b == b'\n').enumerate() {
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        if scan.line(line, limit) {
            return Some(index);
        }
    }
    None
}

/// The state of [`yaml_excess_line`] between lines.
#[derive(Default)]
struct YamlScan {
    /// Columns of the open block collections, innermost last.
    indents: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    /// The quote of a quoted scalar still open at the end of the previous line.
    quote: Option<u8>,
    /// The indentation of the line that started a block scalar still going on.
    block_scalar_owner: Option<usize>,
}

impl YamlScan {
    /// Scans one line; true when it nests past `limit`.
    fn line(&mut self, line: &[u8], limit: usize) -> bool {
        let indent = line.iter().take_while(|b| **b == b' ').count();
        let blank = line[indent..].iter().all(|b| *b == b' ' || *b == b'\t');
        if let Some(owner) = self.block_scalar_owner {
            if blank || indent > owner {
                return false;
            }
            self.block_scalar_owner = None;
        }
        if self.quote.is_some() || self.flow > 0 {
            return self.tokens(line, 0, indent, limit);
        }
        if blank || line[indent] == b'#' {
            return false;
        }
        if indent == 0 && (line.starts_with(b"---") || line.starts_with(b"...")) {
            let after = &line[3..];
            if after.is_empty() || after[0] == b' ' || after[0] == b'\t' {
                self.indents.clear();
                return self.tokens(line, 3, indent, limit);
            }
        }
        while self.indents.last().is_some_and(|last| *last > indent) {
            self.indents.pop();
        }
        if self.indents.last() != Some(&indent) {
            self.indents.push(indent);
        }
        // Compact sequences (`- - - x`, `- key: v`): each entry's content opens a collection
        // at its own column.
        let mut at = indent;
        while line.get(at) == Some(&b'-') && matches!(line.get(at + 1), None | Some(b' ')) {
            at += 1;
            while line.get(at) == Some(&b' ') {
                at += 1;
            }
            match line.get(at) {
                None | Some(b'#') => break,
                // Another entry marker, or a mapping key: a collection at this column.
                Some(b'-') => self.indents.push(at),
                Some(_) if looks_like_key(&line[at..]) => self.indents.push(at),
                // A scalar entry opens nothing.
                Some(_) => {}
            }
        }
        if self.indents.len() > limit {
            return true;
        }
        self.tokens(line, at, indent, limit)
    }

    /// Follows quotes, comments, flow collections and block scalar headers from `start`.
    fn tokens(&mut self, line: &[u8], start: usize, indent: usize, limit: usize) -> bool {
        let mut at = start;
        while at < line.len() {
            let byte = line[at];
            let previous = at.checked_sub(1).map(|p| line[p]);
            let token_start = at == start || matches!(previous, Some(b' ' | b'\t'));
            match self.quote {
                Some(b'"') => {
                    if byte == b'\\' {
                        at += 1;
                    } else if byte == b'"' {
                        self.quote = None;
                    }
                }
                Some(_) => {
                    if byte == b'\'' {
                        if line.get(at + 1) == Some(&b'\'') {
                            at += 1;
                        } else {
                            self.quote = None;
                        }
                    }
                }
                None => match byte {
                    b'#' if token_start => return false,
                    b'"' | b'\''
                        if token_start || matches!(previous, Some(b'[' | b'{' | b',' | b':')) =>
                    {
                        self.quote = Some(byte);
                    }
                    b'[' | b'{' if self.flow > 0 || token_start => {
                        self.flow += 1;
                        if self.flow > limit {
                            return true;
                        }
                    }
                    b']' | b'}' if self.flow > 0 => self.flow -= 1,
                    b'|' | b'>'
                        if self.flow == 0
                            && token_start
                            && is_block_scalar_header(&line[at + 1..]) =>
                    {
                        self.block_scalar_owner = Some(indent);
                        return false;
                    }
                    _ => {}
                },
            }
            at += 1;
        }
        false
    }
}

/// Whether a line's content starts with a mapping key (`key: ...` or `key:`), roughly: enough
/// to tell a mapping entry from a scalar in a compact sequence.
fn looks_like_key(content: &[u8]) -> bool {
    content.windows(2).any(|pair| pair == b": ") || content.ends_with(b":")
}

/// Whether what follows a `|` or `>` makes it a block scalar header: indentation and chomping
/// indicators, then nothing but blanks or a comment.
fn is_block_scalar_header(rest: &[u8]) -> bool {
    let indicators = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'+' || **b == b'-')
        .count();
    let tail = &rest[indicators..];
    let blanks = tail
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    tail.len() == blanks || (blanks > 0 && tail[blanks] == b'#')
}

/// The opening bracket at which a JSON text first nests past `limit` arrays and objects, or
/// `None` when it never does (or is not JSON: the parser reports that).
pub fn json_excess_bracket(text: &[u8], limit: usize) -> Option<u8> {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(byte);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(depth: usize) -> String {
        format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    fn block(depth: usize) -> String {
        (0..depth)
            .map(|level| format!("{}k:\n", " ".repeat(level)))
            .collect()
    }

    #[test]
    fn flow_nesting_is_counted_up_to_the_limit() {
        assert_eq!(yaml_excess_line(flow(10).as_bytes(), 10), None);
        assert_eq!(yaml_excess_line(flow(11).as_bytes(), 10), Some(0));
        assert_eq!(yaml_excess_line(b"a: {b: {c: [1]}}", 3), None);
        assert_eq!(yaml_excess_line(b"a: {b: {c: [1]}}", 2), Some(0));
    }

    #[test]
    fn block_nesting_counts_indentation_levels() {
        // `k:` at columns 0..depth-1 is `depth` nested mappings.
        assert_eq!(yaml_excess_line(block(10).as_bytes(), 10), None);
        assert_eq!(yaml_excess_line(block(11).as_bytes(), 10), Some(10));
        // Coming back out frees the levels.
        let wide = "a:\n  b:\n    c: 1\n  d:\n    e: 1\nf:\n  g: 1\n";
        assert_eq!(yaml_excess_line(wide.as_bytes(), 3), None);
        assert_eq!(yaml_excess_line(wide.as_bytes(), 2), Some(2));
    }

    #[test]
    fn compact_sequences_open_one_level_per_dash() {
        // Three sequences holding a scalar; a fourth level when the entry is a mapping.
        assert_eq!(yaml_excess_line(b"- - - x\n", 3), None);
        assert_eq!(yaml_excess_line(b"- - - x\n", 2), Some(0));
        assert_eq!(yaml_excess_line(b"- - - k: v\n", 4), None);
        assert_eq!(yaml_excess_line(b"- - - k: v\n", 3), Some(0));
        let items = "items:\n- name: a\n  value: 1\n- name: b\n";
        assert_eq!(yaml_excess_line(items.as_bytes(), 2), None);
    }

    #[test]
    fn brackets_in_quotes_comments_scalars_and_block_scalars_do_not_nest() {
        let text = "a: \"[[[[\" # [[[[\nb: '{{{{'\nc: x[[[[\nd: |\n  [[[[\n  {{{{\ne: >-\n    [[[[\nf: 'it''s [[['\n";
        assert_eq!(yaml_excess_line(text.as_bytes(), 1), None);
        // A quoted scalar spanning lines keeps its brackets to itself.
        assert_eq!(yaml_excess_line(b"a: \"x\n  [[[[\"\n", 1), None);
    }

    #[test]
    fn json_brackets_outside_strings_count() {
        assert_eq!(json_excess_bracket(b"[[[]]]", 3), None);
        assert_eq!(json_excess_bracket(b"[[[[]]]]", 3), Some(b'['));
        assert_eq!(
            json_excess_bracket(br#"{"a":{"b":{"c":{}}}}"#, 3),
            Some(b'{')
        );
        assert_eq!(json_excess_bracket(br#"{"a":"[[[[\"[[[["}"#, 1), None);
    }

    /// The limit Skiff stores up to is exactly what `serde_json` reads back.
    #[test]
    fn serde_json_reads_back_the_stored_depth_and_no_more() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deepest = nested(MAX_STORED_DEPTH);
        assert!(serde_json::from_str::<serde_json::Value>(&deepest).is_ok());
        let deeper = nested(MAX_STORED_DEPTH + 1);
        let err = serde_json::from_str::<serde_json::Value>(&deeper).unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
    }
}
