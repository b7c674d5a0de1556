//! Label and field selectors with Kubernetes' grammar, matching rules, canonical string form and
//! error messages, so `?labelSelector=` / `?fieldSelector=` and the selectors inside objects
//! (`spec.selector`) behave as they do against a real API server.

use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::resources::ResourceInfo;

/// Why a selector was rejected. The `Display` text is the message Kubernetes puts in the
/// `BadRequest` status, so callers can pass it through unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// A label selector that breaks the grammar or names an invalid key or value.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A `matchExpressions` entry with an operator Kubernetes does not know.
    #[error("{0:?} is not a valid label selector operator")]
    UnknownOperator(String),
    /// A field selector that breaks the grammar or its escaping rules.
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// A field the kind has no field-selector support for (kinds with their own list).
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A field outside `metadata.name`/`metadata.namespace` on a kind with no list of its own.
    #[error("{0:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")]
    UnknownField(String),
}

/// How a label requirement compares a label with its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value`: also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: also true when the label is absent.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n`: the label parses as an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label parses as an integer less than `n`.
    LessThan,
}

/// One condition of a label selector; a selector is the AND of its requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// The label key the requirement tests.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values compared against, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Builds a requirement, validating it as `labels.NewRequirement` does so that messages
    /// carry the same field paths (`key`, `values[0][app]`).
    fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        values_json: &str,
    ) -> Result<Self, SelectorError> {
        let mut errors: Vec<String> = Vec::new();
        if let Some(msg) = label_key_errors(key) {
            errors.push(format!("key: Invalid value: {}: {msg}", go_quote(key)));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errors.push(format!(
                "values: Invalid value: {values_json}: for 'in', 'notin' operators, values set can't be empty"
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errors.push(format!(
                    "values: Invalid value: {values_json}: exact-match compatibility requires one single value"
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errors.push(format!(
                "values: Invalid value: {values_json}: values set must be empty for exists and does not exist"
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errors.push(format!(
                        "values: Invalid value: {values_json}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errors.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(msg) = label_value_errors(v) {
                errors.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {msg}",
                    go_quote(v)
                ));
            }
        }
        if let Some(message) = aggregate(errors) {
            return Err(SelectorError::InvalidLabelSelector(message));
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether the labels satisfy this requirement (`labels.Requirement.Matches`).
    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut sorted = self.values.clone();
        sorted.sort();
        f.write_str(&sorted.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector. Requirements are kept sorted by key, as Kubernetes keeps them, which
/// makes the string form canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector` selects nothing at all (unlike an empty one).
    nothing: bool,
}

impl LabelSelector {
    /// A selector that selects every object, as an empty `?labelSelector=` does.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// A selector that selects no object, as a missing `spec.selector` does for controllers.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string syntax of `?labelSelector=` and `kubectl -l`, with Kubernetes' grammar
    /// and messages.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`) as
    /// `metav1.LabelSelectorAsSelector` does: null selects nothing, `{}` selects everything.
    pub fn from_label_selector(sel: &Value) -> Result<LabelSelector, SelectorError> {
        let obj = match sel {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::InvalidLabelSelector(format!(
                    "a label selector must be an object, got {other}"
                )))
            }
        };
        let mut requirements = Vec::new();
        if let Some(match_labels) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            let Some(match_labels) = match_labels.as_object() else {
                return Err(SelectorError::InvalidLabelSelector(
                    "matchLabels must be a map of strings".to_string(),
                ));
            };
            let mut keys: Vec<&String> = match_labels.keys().collect();
            keys.sort();
            for key in keys {
                let Some(value) = match_labels.get(key).and_then(Value::as_str) else {
                    return Err(SelectorError::InvalidLabelSelector(format!(
                        "matchLabels[{key}] must be a string"
                    )));
                };
                let values = vec![value.to_string()];
                let json = json_strings(&values);
                requirements.push(Requirement::new(key, Operator::Equals, values, &json)?);
            }
        }
        if let Some(expressions) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            let Some(expressions) = expressions.as_array() else {
                return Err(SelectorError::InvalidLabelSelector(
                    "matchExpressions must be a list".to_string(),
                ));
            };
            for expr in expressions {
                let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
                let op_name = expr
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let operator = match op_name {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    other => return Err(SelectorError::UnknownOperator(other.to_string())),
                };
                let raw_values = expr.get("values").and_then(Value::as_array);
                let values: Vec<String> = raw_values
                    .map(|vs| {
                        vs.iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                // Go renders a nil slice as `null` and an empty one as `[]`.
                let json = if values.is_empty() {
                    "null".to_string()
                } else {
                    json_strings(&values)
                };
                requirements.push(Requirement::new(key, operator, values, &json)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Whether the selector places no restriction (it selects everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether the selector is the "select nothing" selector of a null `metav1.LabelSelector`.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy the selector; missing labels are empty.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Formats a label map as `labels.FormatLabels` does: `a=b,c=d` sorted by key, `<none>` if empty.
pub fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

/// Joins field errors as `utilerrors.NewAggregate` prints them: one bare, several bracketed.
fn aggregate(errors: Vec<String>) -> Option<String> {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => None,
        1 => unique.pop(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

/// Renders a string slice the way Go's `json.Marshal` does inside field errors.
fn json_strings(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

/// Quotes a string as Go's `%q` does for the characters label input can contain.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `validation.RegexError`: the message, examples and the regex Kubernetes validated with.
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{re}')"));
    out
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        ok(first) && ok(last) && bytes.iter().all(|b| ok(b) || *b == b'-')
    })
}

/// `validation.IsQualifiedName` joined with `; `, or `None` for a valid key.
fn label_key_errors(key: &str) -> Option<String> {
    let mut errs: Vec<String> = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS_SUBDOMAIN_MSG, DNS_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            return Some(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ))
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// `validation.IsValidLabelValue` joined with `; `, or `None` for a valid value.
fn label_value_errors(value: &str) -> Option<String> {
    let mut errs: Vec<String> = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            &format!("({LABEL_KEY_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The label selector lexer, byte for byte as Kubernetes' (a NUL byte ends the input).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                *b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::End, String::new());
        }
        self.unread();
        if is_special(ch) {
            self.scan_special()
        } else {
            self.scan_identifier()
        }
    }

    fn scan_identifier(&mut self) -> (Token, String) {
        let start = self.pos;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
        }
        let end = self.pos.min(self.s.len());
        let bytes = &self.s[start..end];
        let bytes = bytes.split(|b| *b == 0).next().unwrap_or_default();
        let lit = String::from_utf8_lossy(bytes).into_owned();
        (keyword(bytes).unwrap_or(Token::Identifier), lit)
    }

    fn scan_special(&mut self) -> (Token, String) {
        let mut buffer: Vec<u8> = Vec::new();
        let mut last: Option<(Token, String)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
            if let Some(tok) = keyword(&buffer) {
                last = Some((tok, String::from_utf8_lossy(&buffer).into_owned()));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        last.unwrap_or_else(|| {
            (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buffer)
                ),
            )
        })
    }
}

/// Whether `in`/`notin` count as operators or as plain words (values may be called `in`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// The recursive-descent parser of `labels.Parse`, with its exact error messages.
struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            items.push((tok, lit));
            if tok == Token::End {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, at: usize, context: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(at)
            .cloned()
            .unwrap_or((Token::End, String::new()));
        match tok {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.item(self.position, context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        SelectorError::InvalidLabelSelector(format!(
                            "unable to parse requirement: {e}"
                        ))
                    })?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(invalid(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(invalid(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(invalid(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(&key, op, Vec::new(), "[]").map_err(|e| e.to_string());
        }
        let operator = self.parse_operator()?;
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        values.sort();
        values.dedup();
        let json = json_strings(&values);
        Requirement::new(&key, operator, values, &json).map_err(|e| e.to_string())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut negated = false;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            negated = true;
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(msg) = label_key_errors(&lit) {
            return Err(format!("<nil>: Invalid value: {}: {msg}", go_quote(&lit)));
        }
        let (next, _) = self.lookahead(Context::Values);
        let unary = matches!(next, Token::End | Token::Comma);
        let operator = match (negated, unary) {
            (true, _) => Some(Operator::DoesNotExist),
            (false, true) => Some(Operator::Exists),
            (false, false) => None,
        };
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (closing, _) = self.consume(Context::Values);
                if closing != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    let (next, next_lit) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_lit}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

fn invalid(message: String) -> SelectorError {
    SelectorError::InvalidLabelSelector(message)
}

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector: the AND of its terms, kept sorted as Kubernetes sorts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `?fieldSelector=` syntax (`a=b`, `a==b`, `a!=b`, comma-separated, with `\`
    /// escaping `\`, `,` and `=` in values) with Kubernetes' messages.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::InvalidFieldSelector(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(rhs)?;
            // A term with neither field nor value selects everything and is dropped.
            if lhs.is_empty() && value.is_empty() {
                continue;
            }
            terms.push(FieldTerm {
                field: lhs.to_string(),
                value,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector places no restriction.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value an `=`/`==` term pins a field to, so callers can serve `metadata.name=x`
    /// without scanning.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }

    /// Rejects fields the kind does not support, with the message Kubernetes answers with.
    pub fn validate_for(&self, resource: &ResourceInfo) -> Result<(), SelectorError> {
        for term in &self.terms {
            match supported_fields(resource) {
                Some(fields) if !fields.contains(&term.field.as_str()) => {
                    return Err(SelectorError::UnsupportedField(term.field.clone()))
                }
                None if !is_default_field(&term.field) => {
                    return Err(SelectorError::UnknownField(term.field.clone()))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The selector with each field named as the storage version names it (a field label
    /// conversion: `events.k8s.io`'s `regarding.name` is the stored `involvedObject.name`), for
    /// matching stored objects. Call after [`FieldSelector::validate_for`].
    pub fn for_storage(mut self, resource: &ResourceInfo) -> FieldSelector {
        let strategy = crate::kinds::strategy_for(resource);
        for term in &mut self.terms {
            if let Some(stored) = strategy.stored_field_label(&term.field) {
                term.field = stored.to_string();
            }
        }
        self
    }

    /// Whether an object satisfies every term; fields the object lacks compare as `""`.
    pub fn matches(&self, resource: &ResourceInfo, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(resource, obj, &t.field).unwrap_or_default();
            (actual == t.value) != t.negated
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Splits on commas not escaped by a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Finds the first operator, trying `!=`, `==`, `=` at each position as Kubernetes does.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::InvalidFieldSelector(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its number.
            ',' | '=' => {
                return Err(SelectorError::InvalidFieldSelector(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )))
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidFieldSelector(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

fn is_default_field(field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
}

/// The fields a kind's field selectors may name, for kinds with their own list; `None` means
/// only `metadata.name` and `metadata.namespace` (Kubernetes' default conversion).
fn supported_fields(resource: &ResourceInfo) -> Option<&'static [&'static str]> {
    crate::kinds::strategy_for(resource).field_selectors()
}

fn str_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The value Kubernetes compares a field selector term with, for the fields it supports on the
/// kind; `None` for fields it does not support. Missing values are `""`.
pub fn field_value(resource: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    let supported = match supported_fields(resource) {
        Some(fields) => fields.contains(&field),
        None => is_default_field(field),
    };
    if !supported {
        return None;
    }
    Some(match field {
        "metadata.name" => str_at(obj, "/metadata/name"),
        // Cluster-scoped objects have no namespace to select on.
        "metadata.namespace" => str_at(obj, "/metadata/namespace"),
        "spec.nodeName" | "spec.host" => str_at(obj, "/spec/nodeName"),
        "spec.restartPolicy" => str_at(obj, "/spec/restartPolicy"),
        "spec.schedulerName" => str_at(obj, "/spec/schedulerName"),
        "spec.serviceAccountName" => str_at(obj, "/spec/serviceAccountName"),
        "spec.hostNetwork" => bool_at(obj, "/spec/hostNetwork"),
        "status.phase" => str_at(obj, "/status/phase"),
        "status.podIP" => obj
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| str_at(obj, "/status/podIP")),
        "status.nominatedNodeName" => str_at(obj, "/status/nominatedNodeName"),
        "spec.unschedulable" => bool_at(obj, "/spec/unschedulable"),
        "spec.clusterIP" => str_at(obj, "/spec/clusterIP"),
        "spec.type" => str_at(obj, "/spec/type"),
        "type" => str_at(obj, "/type"),
        "status.replicas" => obj
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        "status.successful" => obj
            .pointer("/status/succeeded")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        "reason" => str_at(obj, "/reason"),
        "reportingComponent" => str_at(obj, "/reportingComponent"),
        "source" => str_at(obj, "/source/component"),
        other => match other.strip_prefix("involvedObject.") {
            Some(sub) => str_at(obj, &format!("/involvedObject/{sub}")),
            None => String::new(),
        },
    })
}

fn bool_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parses_every_operator_and_matches_like_kubernetes() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<9", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("  app = web ,  tier in ( front , back )  ", true),
            ("app in (in,notin,web)", true),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.matches(&l), *want, "selector {input:?}");
        }
    }

    #[test]
    fn empty_values_are_legal() {
        let sel = LabelSelector::parse("a=,b in (),c in (,x)").unwrap();
        assert!(sel.matches(&labels(json!({"a": "", "b": "", "c": "x"}))));
        assert_eq!(sel.to_string(), "a=,b in (),c in (,x)");
    }

    #[test]
    fn canonical_string_sorts_requirements_and_values() {
        let cases = [
            ("tier in (b,a),app=web", "app=web,tier in (a,b)"),
            (
                "pod-template-hash=abc,app=web",
                "app=web,pod-template-hash=abc",
            ),
            ("!x", "!x"),
            ("a==b,c!=d", "a==b,c!=d"),
            ("x notin (z, y, z)", "x notin (y,z)"),
            ("n>3", "n>3"),
            ("k", "k"),
        ];
        for (input, want) in cases {
            assert_eq!(LabelSelector::parse(input).unwrap().to_string(), want);
        }
    }

    #[test]
    fn syntax_errors_carry_kubernetes_messages() {
        let cases = [
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want, "selector {input:?}");
        }
    }

    #[test]
    fn invalid_keys_and_values_are_rejected_with_validation_messages() {
        let err = LabelSelector::parse("a/b/c=d").unwrap_err().to_string();
        assert!(
            err.starts_with("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of"),
            "{err}"
        );
        let err = LabelSelector::parse("app=-web").unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to parse requirement: values[0][app]: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let long = "x".repeat(64);
        let err = LabelSelector::parse(&long).unwrap_err().to_string();
        assert!(
            err.contains("name part must be no more than 63 characters"),
            "{err}"
        );
        let err = LabelSelector::parse("Example.com/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{err}"
        );
    }

    #[test]
    fn from_label_selector_converts_match_labels_and_expressions() {
        let sel = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"pod-template-hash": "abc", "app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "x", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "zone", "operator": "Exists"}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,env notin (prod),pod-template-hash=abc,tier in (a,b),!x,zone"
        );
        assert!(sel.matches_object(&json!({"metadata": {"labels": {
            "app": "web", "pod-template-hash": "abc", "tier": "a", "zone": "z1"}}})));
        assert!(!sel.matches_object(&json!({"metadata": {"labels": {
            "app": "web", "pod-template-hash": "abc", "tier": "a"}}})));
    }

    #[test]
    fn null_selects_nothing_and_empty_selects_everything() {
        let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.matches_object(&json!({"metadata": {}})));
        assert!(!nothing.is_empty());
        let everything = LabelSelector::from_label_selector(&json!({})).unwrap();
        assert!(everything.is_empty());
        assert!(everything.matches_object(&json!({"metadata": {}})));
        assert_eq!(everything.to_string(), "");
    }

    #[test]
    fn from_label_selector_rejects_bad_expressions() {
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "In"}]
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        let err = LabelSelector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
    }

    fn pods() -> &'static ResourceInfo {
        find("", "v1", "pods").unwrap()
    }

    #[test]
    fn field_selectors_parse_escape_and_match() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]}
        });
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name!=web-1", false),
            ("spec.nodeName=node-a,status.phase=Running", true),
            ("spec.nodeName=", false),
            ("spec.schedulerName=", true),
            ("spec.hostNetwork=false", true),
            ("status.podIP=10.0.0.7", true),
            ("spec.host=node-a", true),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap();
            sel.validate_for(pods()).unwrap();
            assert_eq!(sel.matches(pods(), &pod), *want, "selector {input:?}");
        }
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert!(sel.matches(pods(), &json!({"metadata": {"name": r"a,b=c\d"}})));
        assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(sel.requires_exact_match("metadata.name"), Some(r"a,b=c\d"));
        let sorted = FieldSelector::parse("status.phase=Running,metadata.name=x").unwrap();
        assert_eq!(sorted.to_string(), "metadata.name=x,status.phase=Running");
    }

    #[test]
    fn field_selector_syntax_errors() {
        let cases = [
            ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
            (
                r"a=b\x",
                r"invalid field selector: invalid escape sequence: \x",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                r"a=b\",
                r"invalid field selector: invalid escape sequence: \",
            ),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn unsupported_fields_are_rejected_per_kind() {
        let node = find("", "v1", "nodes").unwrap();
        let deploy = find("apps", "v1", "deployments").unwrap();
        let cases = [
            (pods(), "foo", Some("field label not supported: foo")),
            (node, "metadata.namespace", Some("field label not supported: metadata.namespace")),
            (node, "spec.unschedulable", None),
            (
                deploy,
                "spec.replicas",
                Some("\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
            ),
            (deploy, "metadata.namespace", None),
        ];
        for (resource, field, want) in cases {
            let sel = FieldSelector::parse(&format!("{field}=x")).unwrap();
            let got = sel.validate_for(resource).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{} {field}", resource.plural);
        }
    }

    #[test]
    fn field_values_cover_the_kinds_kubernetes_supports() {
        let event = find("", "v1", "events").unwrap();
        let ev = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet"},
            "reportingComponent": "kubelet"
        });
        let cases = [
            ("involvedObject.kind", Some("Pod")),
            ("involvedObject.name", Some("web-1")),
            ("involvedObject.uid", Some("u1")),
            ("involvedObject.fieldPath", Some("spec.containers{web}")),
            ("involvedObject.namespace", Some("")),
            ("reason", Some("Pulled")),
            ("type", Some("Normal")),
            ("source", Some("kubelet")),
            ("reportingComponent", Some("kubelet")),
            ("message", None),
        ];
        for (field, want) in cases {
            assert_eq!(field_value(event, &ev, field).as_deref(), want, "{field}");
        }
        let secret = find("", "v1", "secrets").unwrap();
        assert_eq!(
            field_value(secret, &json!({"type": "Opaque"}), "type").as_deref(),
            Some("Opaque")
        );
        let node = find("", "v1", "nodes").unwrap();
        assert_eq!(
            field_value(
                node,
                &json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable"
            )
            .as_deref(),
            Some("true")
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(
            field_value(ns, &json!({"status": {"phase": "Active"}}), "status.phase").as_deref(),
            Some("Active")
        );
        let rs = find("apps", "v1", "replicasets").unwrap();
        assert_eq!(
            field_value(rs, &json!({"status": {"replicas": 3}}), "status.replicas").as_deref(),
            Some("3")
        );
    }

    #[test]
    fn format_labels_sorts_and_defaults_to_none() {
        assert_eq!(format_labels(None), "<none>");
        let l = labels(json!({"b": "2", "a": "1"}));
        assert_eq!(format_labels(Some(&l)), "a=1,b=2");
    }
}
