//! The difference between two versions of a value, written the way Kubernetes appends one to
//! some validation messages: a report over its internal Go types in go-cmp's shape. Unchanged
//! lines start with two spaces, removed ones with `- `, added ones with `+ `, each then indented
//! by one tab per level; a run of unchanged fields keeps two fields of context on each side of
//! a change and folds the rest into `... // N identical fields`; keys of neighbouring one-line
//! fields are padded so their values line up. A changed composite value names its Go type
//! (`&core.SecurityContext{...}`), an unchanged one does not, and unset fields of an unchanged
//! struct are left out.
//!
//! Skiff keeps objects as JSON, so the Go names come from tables of fields (for the types whose
//! reports users meet) or, below them, from the JSON keys with their first letter raised.

use serde_json::{Map, Value};

/// How an unset field of a Go struct reads in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoZero {
    /// A string: `""`.
    Text,
    /// A boolean: `false`.
    Flag,
    /// A slice, map or pointer: `nil`.
    Nil,
    /// A struct held by value: `{}`.
    Struct,
}

/// One field of a Go struct as a report names it, so a JSON object can be reported as the Go
/// value it stands for.
#[derive(Clone, Copy, Debug)]
pub struct GoField {
    /// The Go field name (`ImagePullPolicy`).
    pub go_name: &'static str,
    /// The JSON key it is serialised under (`imagePullPolicy`).
    pub json_name: &'static str,
    /// How the field reads when unset.
    pub zero: GoZero,
    /// The Go type a changed composite value is reported under (`[]core.EnvVar`), or `""` for
    /// strings and booleans, whose reports never name a type.
    pub type_name: &'static str,
    /// Whether the field is a pointer, which a report shows as `&` before the value.
    pub pointer: bool,
}

const fn field(
    go_name: &'static str,
    json_name: &'static str,
    zero: GoZero,
    type_name: &'static str,
    pointer: bool,
) -> GoField {
    GoField {
        go_name,
        json_name,
        zero,
        type_name,
        pointer,
    }
}

/// The fields of Kubernetes' internal `core.EphemeralContainerCommon`, in declaration order.
pub const EPHEMERAL_CONTAINER_COMMON: &[GoField] = &[
    field("Name", "name", GoZero::Text, "", false),
    field("Image", "image", GoZero::Text, "", false),
    field("Command", "command", GoZero::Nil, "[]string", false),
    field("Args", "args", GoZero::Nil, "[]string", false),
    field("WorkingDir", "workingDir", GoZero::Text, "", false),
    field("Ports", "ports", GoZero::Nil, "[]core.ContainerPort", false),
    field(
        "EnvFrom",
        "envFrom",
        GoZero::Nil,
        "[]core.EnvFromSource",
        false,
    ),
    field("Env", "env", GoZero::Nil, "[]core.EnvVar", false),
    field(
        "Resources",
        "resources",
        GoZero::Struct,
        "core.ResourceRequirements",
        false,
    ),
    field(
        "ResizePolicy",
        "resizePolicy",
        GoZero::Nil,
        "[]core.ContainerResizePolicy",
        false,
    ),
    field("RestartPolicy", "restartPolicy", GoZero::Nil, "", true),
    field(
        "RestartPolicyRules",
        "restartPolicyRules",
        GoZero::Nil,
        "[]core.ContainerRestartRule",
        false,
    ),
    field(
        "VolumeMounts",
        "volumeMounts",
        GoZero::Nil,
        "[]core.VolumeMount",
        false,
    ),
    field(
        "VolumeDevices",
        "volumeDevices",
        GoZero::Nil,
        "[]core.VolumeDevice",
        false,
    ),
    field(
        "LivenessProbe",
        "livenessProbe",
        GoZero::Nil,
        "core.Probe",
        true,
    ),
    field(
        "ReadinessProbe",
        "readinessProbe",
        GoZero::Nil,
        "core.Probe",
        true,
    ),
    field(
        "StartupProbe",
        "startupProbe",
        GoZero::Nil,
        "core.Probe",
        true,
    ),
    field(
        "Lifecycle",
        "lifecycle",
        GoZero::Nil,
        "core.Lifecycle",
        true,
    ),
    field(
        "TerminationMessagePath",
        "terminationMessagePath",
        GoZero::Text,
        "",
        false,
    ),
    field(
        "TerminationMessagePolicy",
        "terminationMessagePolicy",
        GoZero::Text,
        "",
        false,
    ),
    field(
        "ImagePullPolicy",
        "imagePullPolicy",
        GoZero::Text,
        "",
        false,
    ),
    field(
        "SecurityContext",
        "securityContext",
        GoZero::Nil,
        "core.SecurityContext",
        true,
    ),
    field("Stdin", "stdin", GoZero::Flag, "", false),
    field("StdinOnce", "stdinOnce", GoZero::Flag, "", false),
    field("TTY", "tty", GoZero::Flag, "", false),
];

/// How many unchanged fields a report keeps on each side of a change.
const CONTEXT_FIELDS: usize = 2;

/// Kubernetes' report of how an ephemeral container changed (`core.EphemeralContainer`, its
/// common fields embedded), ending with a newline, as `existing ephemeral containers "x" may not
/// be changed` carries it.
pub fn ephemeral_container_diff(old: &Value, new: &Value) -> String {
    let common_old = only_fields(old, EPHEMERAL_CONTAINER_COMMON);
    let common_new = only_fields(new, EPHEMERAL_CONTAINER_COMMON);
    let common = if common_old == common_new {
        Record::Same {
            key: "EphemeralContainerCommon".into(),
            text: struct_text(&common_new, EPHEMERAL_CONTAINER_COMMON),
        }
    } else {
        Record::Nested {
            key: "EphemeralContainerCommon".into(),
            opening: "core.EphemeralContainerCommon{".into(),
            records: struct_records(&common_old, &common_new, EPHEMERAL_CONTAINER_COMMON),
        }
    };
    let target = [field(
        "TargetContainerName",
        "targetContainerName",
        GoZero::Text,
        "",
        false,
    )];
    let mut records = vec![common];
    records.extend(struct_records(old, new, &target));
    let mut out = String::from("  core.EphemeralContainer{\n");
    render(&fold_unchanged(records), 1, &mut out);
    out.push_str("  }\n");
    out
}

/// One line, or one nested block, of a report.
#[derive(Debug)]
enum Record {
    /// An unchanged field with its value.
    Same { key: String, text: String },
    /// A field whose value was replaced: a removed line and an added one.
    Changed {
        key: String,
        old: String,
        new: String,
    },
    /// A struct field whose own fields changed, reported field by field.
    Nested {
        key: String,
        opening: String,
        records: Vec<Record>,
    },
    /// A folded run of unchanged fields.
    Folded(usize),
}

impl Record {
    fn is_same(&self) -> bool {
        matches!(self, Record::Same { .. })
    }
}

/// The object reduced to the keys a table names, so fields outside it do not count as changes.
fn only_fields(value: &Value, fields: &[GoField]) -> Value {
    let kept: Map<String, Value> = fields
        .iter()
        .filter_map(|f| Some((f.json_name.to_string(), value.get(f.json_name)?.clone())))
        .collect();
    Value::Object(kept)
}

/// Whether a JSON value stands for a Go zero value (unset, empty string, `false`, `{}`).
fn is_zero(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(Value::Bool(flag)) => !flag,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(list)) => list.is_empty(),
        Some(Value::Number(_)) => false,
    }
}

/// The records of a struct that changed: every field in declaration order, each unchanged or
/// replaced, nested objects reported field by field when both sides have one.
fn struct_records(old: &Value, new: &Value, fields: &[GoField]) -> Vec<Record> {
    let mut records = Vec::new();
    for f in fields {
        let (before, after) = (old.get(f.json_name), new.get(f.json_name));
        let key = f.go_name.to_string();
        let unchanged = before == after || (is_zero(before) && is_zero(after));
        if unchanged {
            records.push(Record::Same {
                key,
                text: field_text(after, f, false),
            });
            continue;
        }
        match (before, after) {
            (Some(Value::Object(a)), Some(Value::Object(b))) if !a.is_empty() && !b.is_empty() => {
                let amp = if f.pointer { "&" } else { "" };
                records.push(Record::Nested {
                    key,
                    opening: format!("{amp}{}{{", f.type_name),
                    records: object_records(a, b),
                });
            }
            _ => records.push(Record::Changed {
                key,
                old: field_text(before, f, true),
                new: field_text(after, f, true),
            }),
        }
    }
    records
}

/// The records of a nested object without a table: its keys in order, old ones first.
fn object_records(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<Record> {
    let mut keys: Vec<&String> = old.keys().collect();
    keys.extend(new.keys().filter(|k| !old.contains_key(*k)));
    keys.into_iter()
        .map(|k| {
            let key = go_name(k);
            match (old.get(k), new.get(k)) {
                (before, after) if before == after => Record::Same {
                    key,
                    text: value_text(after),
                },
                (Some(Value::Object(a)), Some(Value::Object(b))) => Record::Nested {
                    key,
                    opening: "{".into(),
                    records: object_records(a, b),
                },
                (before, after) => Record::Changed {
                    key,
                    old: value_text(before),
                    new: value_text(after),
                },
            }
        })
        .collect()
}

/// A field's value: its zero when unset, and for a changed composite its Go type first.
fn field_text(value: Option<&Value>, f: &GoField, changed: bool) -> String {
    if is_zero(value) {
        return match f.zero {
            GoZero::Text => "\"\"".into(),
            GoZero::Flag => "false".into(),
            GoZero::Nil => "nil".into(),
            GoZero::Struct if changed => format!("{}{{}}", f.type_name),
            GoZero::Struct => "{}".into(),
        };
    }
    let text = value_text(value);
    let amp = if f.pointer { "&" } else { "" };
    let composite = matches!(value, Some(Value::Object(_) | Value::Array(_)));
    if changed && composite {
        format!("{amp}{}{text}", f.type_name)
    } else {
        format!("{amp}{text}")
    }
}

/// An unchanged struct on one line: its set fields in declaration order.
fn struct_text(value: &Value, fields: &[GoField]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter(|f| !is_zero(value.get(f.json_name)))
        .map(|f| {
            format!(
                "{}: {}",
                f.go_name,
                field_text(value.get(f.json_name), f, false)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A value on one line with its types left out, as a report writes values nested in others.
fn value_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "nil".into(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => go_quote(text),
        Some(Value::Array(items)) => {
            let parts: Vec<String> = items.iter().map(|v| value_text(Some(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Some(Value::Object(map)) => {
            let parts: Vec<String> = map
                .iter()
                .filter(|(_, v)| !is_zero(Some(v)))
                .map(|(k, v)| format!("{}: {}", go_name(k), value_text(Some(v))))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A Go field name from a JSON key: its first letter raised, and `TTY` whole as Go spells it.
fn go_name(json_name: &str) -> String {
    if json_name == "tty" {
        return "TTY".into();
    }
    let mut chars = json_name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A string quoted as Go's `%q` quotes it.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Folds each run of unchanged records to at most two on each side of a change (none before
/// the first change, none after the last), never folding a single record.
fn fold_unchanged(records: Vec<Record>) -> Vec<Record> {
    let mut runs: Vec<Vec<Record>> = Vec::new();
    for record in records {
        let record = match record {
            Record::Nested {
                key,
                opening,
                records,
            } => Record::Nested {
                key,
                opening,
                records: fold_unchanged(records),
            },
            other => other,
        };
        match runs.last_mut() {
            Some(run) if run[0].is_same() == record.is_same() => run.push(record),
            _ => runs.push(vec![record]),
        }
    }
    let last = runs.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        if !run[0].is_same() {
            out.extend(run);
            continue;
        }
        let total = run.len();
        let lead = if i == 0 { 0 } else { CONTEXT_FIELDS.min(total) };
        let mut tail = if i == last {
            0
        } else {
            CONTEXT_FIELDS.min(total - lead)
        };
        if total - lead - tail == 1 {
            tail += 1;
        }
        let folded = total - lead - tail;
        let mut run = run.into_iter();
        out.extend(run.by_ref().take(lead));
        if folded > 0 {
            out.push(Record::Folded(folded));
        }
        out.extend(run.skip(folded));
    }
    out
}

/// Writes records at a depth, padding the keys of neighbouring one-line records alike.
fn render(records: &[Record], depth: usize, out: &mut String) {
    let tabs = "\t".repeat(depth);
    let mut i = 0;
    while i < records.len() {
        let one_line = |r: &Record| matches!(r, Record::Same { .. } | Record::Changed { .. });
        let group_end = records[i..]
            .iter()
            .position(|r| !one_line(r))
            .map_or(records.len(), |n| i + n);
        if group_end == i {
            match &records[i] {
                Record::Nested {
                    key,
                    opening,
                    records: inner,
                } => {
                    out.push_str(&format!("  {tabs}{key}: {opening}\n"));
                    render(inner, depth + 1, out);
                    out.push_str(&format!("  {tabs}}},\n"));
                }
                Record::Folded(count) => {
                    let noun = if *count == 1 { "field" } else { "fields" };
                    out.push_str(&format!("  {tabs}... // {count} identical {noun}\n"));
                }
                Record::Same { .. } | Record::Changed { .. } => {}
            }
            i += 1;
            continue;
        }
        let group = &records[i..group_end];
        let width = group
            .iter()
            .map(|r| match r {
                Record::Same { key, .. } | Record::Changed { key, .. } => key.chars().count(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        for record in group {
            match record {
                Record::Same { key, text } => {
                    let pad = " ".repeat(width - key.chars().count());
                    out.push_str(&format!("  {tabs}{key}: {pad}{text},\n"));
                }
                Record::Changed { key, old, new } => {
                    let pad = " ".repeat(width - key.chars().count());
                    out.push_str(&format!("- {tabs}{key}: {pad}{old},\n"));
                    out.push_str(&format!("+ {tabs}{key}: {pad}{new},\n"));
                }
                _ => {}
            }
        }
        i = group_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn debugger(image: &str) -> Value {
        json!({"name": "debugger", "image": image,
               "terminationMessagePath": "/dev/termination-log",
               "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
               "stdin": true, "tty": true, "targetContainerName": "app"})
    }

    #[test]
    fn a_changed_image_is_reported_with_two_fields_of_context_each_side() {
        let report = ephemeral_container_diff(&debugger("busybox"), &debugger("alpine"));
        assert_eq!(
            report,
            "  core.EphemeralContainer{\n\
             \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
             \x20 \t\tName:    \"debugger\",\n\
             - \t\tImage:   \"busybox\",\n\
             + \t\tImage:   \"alpine\",\n\
             \x20 \t\tCommand: nil,\n\
             \x20 \t\tArgs:    nil,\n\
             \x20 \t\t... // 21 identical fields\n\
             \x20 \t},\n\
             \x20 \tTargetContainerName: \"app\",\n\
             \x20 }\n"
        );
    }

    #[test]
    fn a_changed_last_field_keeps_context_only_before_it() {
        let mut changed = debugger("busybox");
        changed["tty"] = json!(false);
        let report = ephemeral_container_diff(&debugger("busybox"), &changed);
        assert_eq!(
            report,
            "  core.EphemeralContainer{\n\
             \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
             \x20 \t\t... // 22 identical fields\n\
             \x20 \t\tStdin:     true,\n\
             \x20 \t\tStdinOnce: false,\n\
             - \t\tTTY:       true,\n\
             + \t\tTTY:       false,\n\
             \x20 \t},\n\
             \x20 \tTargetContainerName: \"app\",\n\
             \x20 }\n"
        );
    }

    #[test]
    fn a_changed_target_leaves_the_common_fields_on_one_line() {
        let mut changed = debugger("busybox");
        changed["targetContainerName"] = json!("sidecar");
        let report = ephemeral_container_diff(&debugger("busybox"), &changed);
        assert_eq!(
            report,
            "  core.EphemeralContainer{\n\
             \x20 \tEphemeralContainerCommon: {Name: \"debugger\", Image: \"busybox\", \
             TerminationMessagePath: \"/dev/termination-log\", TerminationMessagePolicy: \"File\", \
             ImagePullPolicy: \"IfNotPresent\", Stdin: true, TTY: true},\n\
             - \tTargetContainerName:      \"app\",\n\
             + \tTargetContainerName:      \"sidecar\",\n\
             \x20 }\n"
        );
    }

    #[test]
    fn composites_name_their_type_when_set_and_nest_when_both_sides_have_one() {
        let mut with_command = debugger("busybox");
        with_command["command"] = json!(["sh", "-c", "echo \"hi\""]);
        with_command["securityContext"] = json!({"privileged": true, "runAsUser": 0});
        let mut escalated = with_command.clone();
        escalated["securityContext"]["privileged"] = json!(false);
        assert_eq!(
            ephemeral_container_diff(&debugger("busybox"), &with_command),
            "  core.EphemeralContainer{\n\
             \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
             \x20 \t\tName:       \"debugger\",\n\
             \x20 \t\tImage:      \"busybox\",\n\
             - \t\tCommand:    nil,\n\
             + \t\tCommand:    []string{\"sh\", \"-c\", \"echo \\\"hi\\\"\"},\n\
             \x20 \t\tArgs:       nil,\n\
             \x20 \t\tWorkingDir: \"\",\n\
             \x20 \t\t... // 14 identical fields\n\
             \x20 \t\tTerminationMessagePolicy: \"File\",\n\
             \x20 \t\tImagePullPolicy:          \"IfNotPresent\",\n\
             - \t\tSecurityContext:          nil,\n\
             + \t\tSecurityContext:          &core.SecurityContext{Privileged: true, RunAsUser: 0},\n\
             \x20 \t\tStdin:                    true,\n\
             \x20 \t\tStdinOnce:                false,\n\
             \x20 \t\tTTY:                      true,\n\
             \x20 \t},\n\
             \x20 \tTargetContainerName: \"app\",\n\
             \x20 }\n"
        );
        let nested = ephemeral_container_diff(&with_command, &escalated);
        assert!(
            nested.contains(
                "\x20 \t\tImagePullPolicy:          \"IfNotPresent\",\n\
                 \x20 \t\tSecurityContext: &core.SecurityContext{\n\
                 - \t\t\tPrivileged: true,\n\
                 + \t\t\tPrivileged: false,\n\
                 \x20 \t\t\tRunAsUser:  0,\n\
                 \x20 \t\t},\n\
                 \x20 \t\tStdin:     true,\n"
            ),
            "{nested}"
        );
    }

    #[test]
    fn a_run_one_longer_than_the_context_is_shown_whole() {
        let records: Vec<Record> = (0..5)
            .map(|n| Record::Same {
                key: format!("F{n}"),
                text: "nil".into(),
            })
            .chain([Record::Changed {
                key: "X".into(),
                old: "1".into(),
                new: "2".into(),
            }])
            .chain((0..5).map(|n| Record::Same {
                key: format!("G{n}"),
                text: "nil".into(),
            }))
            .collect();
        let folded = fold_unchanged(records);
        // Before the change: 3 folded, 2 kept; after it: 2 kept, 3 folded.
        assert_eq!(folded.len(), 1 + 2 + 1 + 2 + 1, "{folded:?}");
        assert!(matches!(folded[0], Record::Folded(3)), "{folded:?}");
        assert!(matches!(folded[6], Record::Folded(3)), "{folded:?}");

        let three: Vec<Record> = (0..3)
            .map(|n| Record::Same {
                key: format!("F{n}"),
                text: "nil".into(),
            })
            .chain([Record::Changed {
                key: "X".into(),
                old: "1".into(),
                new: "2".into(),
            }])
            .collect();
        let folded = fold_unchanged(three);
        assert_eq!(folded.len(), 4, "one field is never folded: {folded:?}");
        assert!(folded.iter().all(|r| !matches!(r, Record::Folded(_))));
    }
}
