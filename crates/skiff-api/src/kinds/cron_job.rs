//! CronJobs (`batch/v1`): defaults, validation with Kubernetes' messages (the schedule checked
//! as the standard 5-field cron syntax Kubernetes' cron library parses), the printer columns
//! `kubectl get cronjobs` shows, and [`Schedule`], the parsed schedule the controller runs.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::wire::object_at;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// The longest CronJob name: its Jobs add `-<11 digits>` and must stay valid label values.
const MAX_NAME_LENGTH: usize = 52;

/// `batch/v1` CronJobs.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["cj"],
    categories: &["all"],
    subresources: &[Status],
    has_generation: true,
    ..res("batch", "v1", "CronJob", "cronjobs", "cronjob", true)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        object_at(root, "status");
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::batch::v1::CronJob>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let Some(spec) = child(root, "spec") else {
            return;
        };
        default_str(spec, "concurrencyPolicy", "Allow");
        default_value(spec, "suspend", json!(false));
        default_value(spec, "successfulJobsHistoryLimit", json!(3));
        default_value(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
            default_template(job_spec);
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_cron_job(obj, false, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        // A schedule already carrying a time zone may keep it.
        let old_schedule = str_at(field(old, "spec"), "schedule");
        validate_cron_job(new, old_schedule.contains("TZ"), errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(cron_job_columns(), cron_job_cells))
    }
}

fn validate_cron_job(obj: &Value, allow_tz_in_schedule: bool, errs: &mut Vec<FieldError>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > MAX_NAME_LENGTH {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::from(name),
            format!("must be no more than {MAX_NAME_LENGTH} characters"),
        ));
    }
    let spec = validation::field(obj, "spec");
    let schedule = str_at(spec, "schedule");
    let time_zone = spec.get("timeZone").and_then(Value::as_str);
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(message) = Schedule::parse(schedule, None) {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &Value::from(schedule),
                message,
            ));
        }
        if allow_tz_in_schedule && schedule.contains("TZ") && time_zone.is_some() {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &Value::from(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz_in_schedule && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &Value::from(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(zone) = time_zone {
        if zone.is_empty() || zone.eq_ignore_ascii_case("local") || TimeZone::get(zone).is_err() {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                &Value::from(zone),
                format!("unknown time zone {zone}"),
            ));
        }
    }
    if let Some(policy) = spec.get("concurrencyPolicy").and_then(Value::as_str) {
        if !matches!(policy, "Allow" | "Forbid" | "Replace") {
            errs.push(FieldError::not_supported(
                "spec.concurrencyPolicy",
                &Value::from(policy),
                &["Allow", "Forbid", "Replace"],
            ));
        }
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        nonnegative(spec.get(key), &format!("spec.{key}"), errs);
    }
    let job_spec = field(field(spec, "jobTemplate"), "spec");
    super::job::validate_job_spec(job_spec, "spec.jobTemplate.spec", errs);
}

fn cron_job_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
        col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
        col("Active", "integer", "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
    ]
}

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last = match timestamp(obj, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let zone = match obj.pointer("/spec/timeZone").and_then(Value::as_str) {
        Some(z) => z.to_string(),
        None => "<none>".to_string(),
    };
    let suspend = match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
        // `printBoolPtr`: Go's words, though the column is typed boolean.
        Some(true) => Value::from("True"),
        Some(false) => Value::from("False"),
        None => Value::from("<unset>"),
    };
    let containers = list(obj, "/spec/jobTemplate/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    let selector = match obj.pointer("/spec/jobTemplate/spec/selector") {
        None | Some(Value::Null) => "<none>".to_string(),
        Some(sel) => match LabelSelector::from_label_selector(sel) {
            Ok(sel) => or_none(&sel.to_string()),
            Err(_) => "<error>".to_string(),
        },
    };
    vec![
        name(obj),
        text(obj, "/spec/schedule").into(),
        zone.into(),
        suspend,
        Value::from(list(obj, "/status/active").len()),
        last.into(),
        age(obj, now),
        names.join(",").into(),
        images.join(",").into(),
        selector.into(),
    ]
}

/// A CronJob schedule as Kubernetes' cron library (robfig/cron v3, standard parser) reads it:
/// five fields (minute, hour, day of month, month, day of week, with names, ranges, steps and
/// lists), a descriptor (`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`, `@every D`),
/// and an optional `CRON_TZ=` or `TZ=` prefix.
#[derive(Debug, Clone)]
pub struct Schedule {
    rule: Rule,
    zone: TimeZone,
}

#[derive(Debug, Clone)]
enum Rule {
    Cron(Box<croner::Cron>),
    Every(Duration),
}

/// Field bounds and names, as the standard parser has them.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// `strconv.Atoi`'s refusal, as the cron library words it.
fn parse_int(expr: &str) -> Result<u32, String> {
    if let Some(rest) = expr.strip_prefix('-') {
        if let Ok(n) = rest.parse::<u32>() {
            return Err(format!("negative number (-{n}) not allowed: {expr}"));
        }
    }
    expr.parse::<u32>().map_err(|_| {
        let reason = if expr.chars().all(|c| c.is_ascii_digit()) && !expr.is_empty() {
            "value out of range"
        } else {
            "invalid syntax"
        };
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": {reason}")
    })
}

fn parse_int_or_name(expr: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0.
        return Ok(u32::try_from(i).unwrap_or(0) + bounds.min);
    }
    parse_int(expr)
}

/// One comma-separated part of a field: the values it selects, and whether it is a bare `*`
/// or `?` (which matters for the day-of-month/day-of-week rule).
fn parse_range(expr: &str, bounds: &Bounds) -> Result<(Vec<u32>, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (bounds.min, bounds.max, true)
    } else {
        let start = parse_int_or_name(low_and_high[0], bounds)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if single && !star {
                end = bounds.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let values = (start..=end)
        .step_by(usize::try_from(step).unwrap_or(1))
        .collect();
    Ok((values, star))
}

/// A field as the pattern handed to the evaluator: `*` when it is a bare star, else the
/// explicit list of values.
fn normalize_field(field: &str, bounds: &Bounds) -> Result<String, String> {
    let mut values = std::collections::BTreeSet::new();
    let mut star = false;
    for part in field.split(',') {
        let (selected, is_star) = parse_range(part, bounds)?;
        star |= is_star;
        values.extend(selected);
    }
    if star {
        return Ok("*".to_string());
    }
    Ok(values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// Go's `time.ParseDuration` for the units a schedule uses (`h`, `m`, `s`, `ms`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let seconds = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1000.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
        rest = next;
    }
    Some(total)
}

impl Schedule {
    /// Parses `spec` as the standard parser does, in `time_zone` (else UTC, the controller's
    /// zone here) unless the spec names its own; the error is the parser's message.
    pub fn parse(spec: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
        let mut zone = match time_zone {
            Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))?,
            None => TimeZone::UTC,
        };
        let mut spec = spec.trim();
        if spec.is_empty() {
            return Err("empty spec string".to_string());
        }
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (prefix, rest) = spec.split_once(' ').unwrap_or((spec, ""));
            let name = prefix.split_once('=').map_or("", |(_, n)| n);
            zone = TimeZone::get(name)
                .map_err(|_| format!("provided bad location {name}: unknown time zone {name}"))?;
            spec = rest.trim();
        }
        if let Some(descriptor) = spec.strip_prefix('@') {
            let pattern = match descriptor {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => {
                    if let Some(every) = descriptor.strip_prefix("every ") {
                        let delay = parse_go_duration(every.trim()).ok_or_else(|| {
                            format!(
                                "failed to parse duration {spec}: time: invalid duration \"{}\"",
                                every.trim()
                            )
                        })?;
                        return Ok(Schedule {
                            rule: Rule::Every(delay.max(Duration::from_secs(1))),
                            zone,
                        });
                    }
                    return Err(format!("unrecognized descriptor: {spec}"));
                }
            };
            return Schedule::from_fields(pattern, zone);
        }
        Schedule::from_fields(spec, zone)
    }

    fn from_fields(spec: &str, zone: TimeZone) -> Result<Schedule, String> {
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let bounds = [&MINUTES, &HOURS, &DAYS_OF_MONTH, &MONTHS, &DAYS_OF_WEEK];
        let mut normalized = Vec::with_capacity(5);
        for (field, bounds) in fields.iter().zip(bounds) {
            normalized.push(normalize_field(field, bounds)?);
        }
        let pattern = normalized.join(" ");
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&pattern)
            .map_err(|e| e.to_string())?;
        Ok(Schedule {
            rule: Rule::Cron(Box::new(cron)),
            zone,
        })
    }

    /// The first scheduled time strictly after `t`, or `None` when the schedule never fires
    /// (say, February 30th).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.rule {
            Rule::Every(delay) => {
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                let delay = jiff::SignedDuration::try_from(*delay).ok()?;
                whole.checked_add(delay).ok()
            }
            Rule::Cron(cron) => {
                let zoned = t.to_zoned(self.zone.clone());
                cron.find_next_occurrence(&zoned, false)
                    .ok()
                    .map(|z| z.timestamp())
            }
        }
    }

    /// The schedule's time zone, in which Job annotations write scheduled times.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use crate::validation::validate_create;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid time")
    }

    fn next(spec: &str, after: &str) -> String {
        Schedule::parse(spec, None)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .next_after(at(after))
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn accepts_what_the_standard_parser_accepts() {
        // (schedule, after, next)
        let cases = [
            (
                "*/1 * * * *",
                "2024-01-01T00:00:30Z",
                "2024-01-01T00:01:00Z",
            ),
            ("@hourly", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"),
            ("@daily", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
            ("@midnight", "2024-01-01T12:00:00Z", "2024-01-02T00:00:00Z"),
            ("@weekly", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
            ("@monthly", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"),
            ("@yearly", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("@annually", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"),
            (
                "@every 90s",
                "2024-01-01T00:00:00.500Z",
                "2024-01-01T00:01:30Z",
            ),
            (
                "30 6-16/4 * * 1-5",
                "2024-01-01T07:00:00Z",
                "2024-01-01T10:30:00Z",
            ),
            (
                "0 0 * * SUN",
                "2024-01-01T00:00:00Z",
                "2024-01-07T00:00:00Z",
            ),
            (
                "0 0 1 jan,Jul *",
                "2024-01-02T00:00:00Z",
                "2024-07-01T00:00:00Z",
            ),
            (
                "5/15 * * * *",
                "2024-01-01T00:06:00Z",
                "2024-01-01T00:20:00Z",
            ),
            ("0 0 ? * *", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
            // Day of month or day of week when both are restricted: the 13th or a Friday.
            ("0 0 13 * 5", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"),
            // A star day of week leaves the day of month alone.
            ("0 0 13 * *", "2024-01-01T00:00:00Z", "2024-01-13T00:00:00Z"),
            (
                "CRON_TZ=Asia/Tokyo 0 9 * * *",
                "2024-01-01T00:00:00Z",
                "2024-01-02T00:00:00Z",
            ),
            (
                "TZ=America/New_York 0 0 * * *",
                "2024-01-01T00:00:00Z",
                "2024-01-01T05:00:00Z",
            ),
        ];
        for (spec, after, want) in cases {
            assert_eq!(next(spec, after), want, "{spec}");
        }
        let tokyo = Schedule::parse("0 9 * * *", Some("Asia/Tokyo")).expect("valid");
        assert_eq!(
            tokyo
                .next_after(at("2024-01-01T00:00:00Z"))
                .map(|t| t.to_string()),
            Some("2024-01-02T00:00:00Z".to_string())
        );
    }

    #[test]
    fn refuses_what_the_standard_parser_refuses_with_its_messages() {
        let cases = [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "0 * * * * *",
                "expected exactly 5 fields, found 6: [0 * * * * *]",
            ),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * 13 *", "end of range (13) above maximum (12): 13"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-2 * * * *",
                "beginning of range (5) beyond end of range (2): 5-2",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "0 0 L * *",
                "failed to parse int from L: strconv.Atoi: parsing \"L\": invalid syntax",
            ),
            (
                "0 0 * * 1#2",
                "failed to parse int from 1#2: strconv.Atoi: parsing \"1#2\": invalid syntax",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(
                Schedule::parse(spec, None).err().as_deref(),
                Some(message),
                "{spec:?}"
            );
        }
        assert!(Schedule::parse("0 0 * * *", Some("Mars/Olympus")).is_err());
    }

    fn cron_job(schedule: &str) -> Value {
        let mut obj = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default", "uid": "u"},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}]}}}}},
        });
        apply_defaults(&V1, &mut obj);
        obj
    }

    #[test]
    fn defaults_and_validation_match_kubernetes() {
        let obj = cron_job("*/1 * * * *");
        assert_eq!(obj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(obj["spec"]["suspend"], false);
        assert_eq!(obj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(obj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(obj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none());
        assert!(validate_create(&V1, &obj).is_empty());

        let messages = |obj: &Value| -> Vec<String> {
            validate_create(&V1, obj)
                .iter()
                .map(FieldError::full)
                .collect()
        };
        assert_eq!(
            messages(&cron_job("* * * *")),
            ["spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4: [* * * *]"]
        );
        assert_eq!(
            messages(&cron_job("CRON_TZ=UTC 0 * * * *")),
            ["spec.schedule: Invalid value: \"CRON_TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
        );
        let mut bad = cron_job("0 * * * *");
        bad["spec"]["concurrencyPolicy"] = json!("Sometimes");
        bad["spec"]["timeZone"] = json!("Mars/Olympus");
        bad["metadata"]["name"] = json!("a".repeat(53));
        let got = messages(&bad);
        assert!(got.contains(&"spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".to_string()), "{got:?}");
        assert!(
            got.contains(
                &"spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"
                    .to_string()
            ),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("metadata.name: Invalid value:")
                    && m.ends_with("must be no more than 52 characters")),
            "{got:?}"
        );
    }

    #[test]
    fn printer_shows_schedule_zone_suspend_active_and_last_schedule() {
        let now = at("2024-01-01T00:10:00Z");
        let mut obj = cron_job("*/1 * * * *");
        obj["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        let cells = cron_job_cells(&obj, now);
        assert_eq!(
            cells[..7],
            [
                json!("hello"),
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>"),
                json!("10m")
            ]
        );
        obj["status"] =
            json!({"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-01-01T00:09:00Z"});
        obj["spec"]["timeZone"] = json!("Etc/UTC");
        let cells = cron_job_cells(&obj, now);
        assert_eq!(cells[2], "Etc/UTC");
        assert_eq!(cells[4], 1);
        assert_eq!(cells[5], "60s");
    }
}
