//! CEL for admission: the expressions of ValidatingAdmissionPolicies (validations, message
//! expressions, variables, match conditions, audit annotations) and of webhook
//! `matchConditions`, compiled and evaluated as kube-apiserver's admission CEL environment does.
//!
//! Evaluation reuses the CRD rules' bounds and their big-stack thread
//! ([`crate::crd::rules`]). The `cel` crate parses but does not type-check, so compiling here adds
//! a small checker of its own: identifiers must be declared (`object`, `oldObject`, `request`,
//! `namespaceObject`, `authorizer`, and `params` or `variables` when the policy has them), and
//! operators applied to operands whose types are known from literals must have an overload, with
//! cel-go's words (`found no matching overload for '_+_' applied to '(int, string)'`). Values
//! from the request are dynamic, as upstream declares `object` and `params`.

use std::collections::HashMap;

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;

use crate::admission_authz::{self as authz, AuthorizerBinding};
use crate::crd::rules::{check_bounds, run_on_rule_stack};

/// The variables an expression may name besides the request's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Declarations {
    /// Whether `params` is declared (the policy has a `paramKind`).
    pub params: bool,
    /// Whether `variables` is declared (the policy has `variables`).
    pub variables: bool,
    /// Whether `namespaceObject` is declared (policies; webhooks' match conditions lack it).
    pub namespace_object: bool,
}

/// The type an expression must evaluate to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A validation or match condition: `bool`.
    Bool,
    /// A message expression: `string`.
    String,
    /// A variable or audit annotation value: anything.
    Any,
}

/// The types the checker follows; `Dyn` where a value comes from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CelType {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
    Dyn,
    /// `authorizer` and the values its library builds.
    Authorizer,
    PathCheck,
    GroupCheck,
    ResourceCheck,
    Decision,
}

impl CelType {
    fn name(self) -> &'static str {
        match self {
            CelType::Bool => "bool",
            CelType::Int => "int",
            CelType::Uint => "uint",
            CelType::Double => "double",
            CelType::String => "string",
            CelType::Bytes => "bytes",
            CelType::Null => "null_type",
            CelType::List => "list(dyn)",
            CelType::Map => "map(dyn, dyn)",
            CelType::Dyn => "dyn",
            CelType::Authorizer => authz::AUTHORIZER_TYPE,
            CelType::PathCheck => authz::PATH_CHECK_TYPE,
            CelType::GroupCheck => authz::GROUP_CHECK_TYPE,
            CelType::ResourceCheck => authz::RESOURCE_CHECK_TYPE,
            CelType::Decision => authz::DECISION_TYPE,
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, CelType::Int | CelType::Uint | CelType::Double)
    }
}

/// Whether `t` is one of the authorizer library's types.
fn is_authz_type(t: CelType) -> bool {
    matches!(
        t,
        CelType::Authorizer
            | CelType::PathCheck
            | CelType::GroupCheck
            | CelType::ResourceCheck
            | CelType::Decision
    )
}

/// The overloads of the authorizer library: the target type each function takes, how many
/// string arguments, and the result type.
fn authz_overloads(function: &str) -> &'static [(CelType, usize, CelType)] {
    use CelType::*;
    match function {
        "path" => &[(Authorizer, 1, PathCheck)],
        "group" => &[(Authorizer, 1, GroupCheck)],
        "serviceAccount" => &[(Authorizer, 2, Authorizer)],
        "resource" => &[(GroupCheck, 1, ResourceCheck)],
        "subresource" | "namespace" | "name" | "fieldSelector" | "labelSelector" => {
            &[(ResourceCheck, 1, ResourceCheck)]
        }
        "check" => &[(PathCheck, 1, Decision), (ResourceCheck, 1, Decision)],
        "allowed" | "errored" => &[(Decision, 0, Bool)],
        "reason" | "error" => &[(Decision, 0, String)],
        _ => &[],
    }
}

/// cel-go's words for a call no overload takes, `target.(args)` for member calls.
fn no_member_overload(function: &str, has_target: bool, types: &[CelType]) -> String {
    let names = |ts: &[CelType]| ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
    match (has_target, types.split_first()) {
        (true, Some((target, args))) => format!(
            "found no matching overload for '{function}' applied to '{}.({})'",
            target.name(),
            names(args)
        ),
        _ => format!(
            "found no matching overload for '{function}' applied to '({})'",
            names(types)
        ),
    }
}

/// The result of a call to an authorizer library function, `None` when `function` is not
/// one and its target is no library type.
fn authz_call_type(
    function: &str,
    has_target: bool,
    types: &[CelType],
) -> Option<Result<CelType, String>> {
    let overloads = authz_overloads(function);
    let target = if has_target {
        types.first().copied()
    } else {
        None
    };
    let on_library_value = target.is_some_and(is_authz_type);
    if overloads.is_empty() {
        // No standard member function takes a library value.
        return on_library_value.then(|| Err(no_member_overload(function, true, types)));
    }
    let Some(target) = target else {
        return Some(Err(no_member_overload(function, false, types)));
    };
    let arguments_fit = |count: usize| {
        types.len() == count + 1
            && types[1..]
                .iter()
                .all(|t| matches!(t, CelType::String | CelType::Dyn))
    };
    for (wanted, count, result) in overloads {
        if (target == *wanted || target == CelType::Dyn) && arguments_fit(*count) {
            return Some(Ok(*result));
        }
    }
    Some(Err(no_member_overload(function, true, types)))
}

/// A type error found by the checker, with the node it concerns.
struct CheckError {
    id: u64,
    message: String,
}

struct Checker<'a> {
    declared: Vec<&'a str>,
}

impl<'a> Checker<'a> {
    fn check(&mut self, node: &'a IdedExpr) -> Result<CelType, CheckError> {
        let fail = |message: String| CheckError {
            id: node.id,
            message,
        };
        match &node.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => CelType::Bool,
                LiteralValue::Bytes(_) => CelType::Bytes,
                LiteralValue::Double(_) => CelType::Double,
                LiteralValue::Int(_) => CelType::Int,
                LiteralValue::Null => CelType::Null,
                LiteralValue::String(_) => CelType::String,
                LiteralValue::UInt(_) => CelType::Uint,
            }),
            Expr::Ident(name) if name == "authorizer" && self.declared.contains(&"authorizer") => {
                Ok(CelType::Authorizer)
            }
            Expr::Ident(name) => {
                if self.declared.iter().any(|d| d == name) || is_type_name(name) {
                    Ok(CelType::Dyn)
                } else {
                    Err(fail(format!(
                        "undeclared reference to '{name}' (in container '')"
                    )))
                }
            }
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                if operand == CelType::Authorizer
                    && select.field == "requestResource"
                    && !select.test
                {
                    return Ok(CelType::ResourceCheck);
                }
                if is_authz_type(operand) {
                    return Err(fail(format!("undefined field '{}'", select.field)));
                }
                Ok(if select.test {
                    CelType::Bool
                } else {
                    CelType::Dyn
                })
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.check(element)?;
                }
                Ok(CelType::List)
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            self.check(&e.key)?;
                            self.check(&e.value)?;
                        }
                        EntryExpr::StructField(f) => {
                            self.check(&f.value)?;
                        }
                    }
                }
                Ok(CelType::Map)
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.check(&f.value)?;
                    }
                }
                Ok(CelType::Dyn)
            }
            Expr::Comprehension(comprehension) => {
                self.check(&comprehension.iter_range)?;
                self.check(&comprehension.accu_init)?;
                let before = self.declared.len();
                self.declared.push(&comprehension.iter_var);
                if let Some(second) = &comprehension.iter_var2 {
                    self.declared.push(second);
                }
                self.declared.push(&comprehension.accu_var);
                let outcome = (|| {
                    self.check(&comprehension.loop_cond)?;
                    self.check(&comprehension.loop_step)?;
                    self.check(&comprehension.result)
                })();
                self.declared.truncate(before);
                outcome?;
                Ok(CelType::Dyn)
            }
            Expr::Call(call) => {
                let mut types = Vec::new();
                if let Some(target) = &call.target {
                    types.push(self.check(target)?);
                }
                for arg in &call.args {
                    types.push(self.check(arg)?);
                }
                call_type(&call.func_name, call.target.is_some(), &types).map_err(fail)
            }
            Expr::Unspecified => Ok(CelType::Dyn),
        }
    }
}

/// Names of types CEL lets an expression use as values (`type(x) == int`).
fn is_type_name(name: &str) -> bool {
    matches!(
        name,
        "int"
            | "uint"
            | "double"
            | "bool"
            | "string"
            | "bytes"
            | "list"
            | "map"
            | "null_type"
            | "type"
    )
}

fn no_overload(function: &str, types: &[CelType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
    format!(
        "found no matching overload for '{function}' applied to '({})'",
        names.join(", ")
    )
}

/// The result type of a call, or cel-go's words when no overload takes the known types.
fn call_type(function: &str, has_target: bool, types: &[CelType]) -> Result<CelType, String> {
    use CelType::*;
    if let Some(result) = authz_call_type(function, has_target, types) {
        return result;
    }
    let known = |t: &CelType| *t != Dyn;
    match function {
        operators::LOGICAL_AND | operators::LOGICAL_OR | operators::LOGICAL_NOT => {
            if types.iter().all(|t| matches!(t, Bool | Dyn)) {
                Ok(Bool)
            } else {
                Err(no_overload(function, types))
            }
        }
        operators::NOT_STRICTLY_FALSE => Ok(Bool),
        operators::NEGATE => match types {
            [t @ (Int | Double | Dyn)] => Ok(*t),
            _ => Err(no_overload(function, types)),
        },
        operators::EQUALS | operators::NOT_EQUALS => match types {
            [a, b] if known(a) && known(b) && a != b && *a != Null && *b != Null => {
                Err(no_overload(function, types))
            }
            _ => Ok(Bool),
        },
        operators::LESS
        | operators::LESS_EQUALS
        | operators::GREATER
        | operators::GREATER_EQUALS => match types {
            [a, b] if known(a) && known(b) => {
                let comparable = (a.is_numeric() && b.is_numeric())
                    || (a == b && matches!(a, Bool | String | Bytes));
                if comparable {
                    Ok(Bool)
                } else {
                    Err(no_overload(function, types))
                }
            }
            _ => Ok(Bool),
        },
        operators::ADD => match types {
            [a, b] if known(a) && known(b) => {
                if a == b && matches!(a, Int | Uint | Double | String | Bytes | List) {
                    Ok(*a)
                } else {
                    Err(no_overload(function, types))
                }
            }
            [a, b] => Ok(if known(a) { *a } else { *b }),
            _ => Ok(Dyn),
        },
        operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO => {
            match types {
                [a, b] if known(a) && known(b) => {
                    let numeric = if function == operators::MODULO {
                        matches!(a, Int | Uint)
                    } else {
                        a.is_numeric()
                    };
                    if a == b && numeric {
                        Ok(*a)
                    } else {
                        Err(no_overload(function, types))
                    }
                }
                [a, b] => Ok(if known(a) { *a } else { *b }),
                _ => Ok(Dyn),
            }
        }
        operators::CONDITIONAL => match types {
            [c, a, b] => {
                if !matches!(c, Bool | Dyn) || (known(a) && known(b) && a != b) {
                    Err(no_overload(function, types))
                } else if a == b {
                    Ok(*a)
                } else {
                    Ok(Dyn)
                }
            }
            _ => Ok(Dyn),
        },
        operators::IN => match types {
            [_, container] if known(container) && !matches!(container, List | Map) => {
                Err(no_overload(function, types))
            }
            _ => Ok(Bool),
        },
        "size" => match types {
            [t] if known(t) && !matches!(t, String | Bytes | List | Map) => {
                Err(no_overload(function, types))
            }
            _ => Ok(Int),
        },
        "startsWith" | "endsWith" | "contains" | "matches" if has_target => match types {
            [a, b] if (known(a) && *a != String) || (known(b) && *b != String) => {
                Err(no_overload(function, types))
            }
            _ => Ok(Bool),
        },
        "string" => Ok(String),
        "int" => Ok(Int),
        "uint" => Ok(Uint),
        "double" => Ok(Double),
        "bool" => Ok(Bool),
        _ => Ok(Dyn),
    }
}

/// The variables of every admission expression, as upstream declares them.
fn declared(declarations: Declarations) -> Vec<&'static str> {
    let mut names = vec!["object", "oldObject", "request", "authorizer"];
    if declarations.namespace_object {
        names.push("namespaceObject");
    }
    if declarations.params {
        names.push("params");
    }
    if declarations.variables {
        names.push("variables");
    }
    names
}

/// The caret line cel-go prints under the source of an error.
fn located(source: &str, offset: Option<u32>, message: &str) -> String {
    let offset = offset.unwrap_or(0) as usize;
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    let snippet = source.lines().nth(line - 1).unwrap_or("");
    format!(
        "ERROR: <input>:{line}:{}: {message}\n | {snippet}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}

/// Compiles an expression for the declared variables and checks its result type, returning
/// the detail Kubernetes' validation reports (`compilation failed: ERROR: <input>:...`, or
/// `must evaluate to bool but got string`).
pub fn compile(
    expression: &str,
    declarations: Declarations,
    expected: Expected,
) -> Result<(), String> {
    check_bounds(expression).map_err(|e| format!("compilation failed: {e}"))?;
    let names = declared(declarations);
    let expression = expression.to_string();
    run_on_rule_stack(move || {
        let program = cel::Program::compile(&expression).map_err(|errors| {
            format!(
                "compilation failed: {}",
                errors.to_string().replace("\n| ", "\n | ")
            )
        })?;
        let mut checker = Checker { declared: names };
        let found = checker.check(program.expression()).map_err(|e| {
            let offset = program
                .source_info()
                .offset_for(e.id)
                .map(|(start, _)| start);
            format!(
                "compilation failed: {}",
                located(&expression, offset, &e.message)
            )
        })?;
        let wanted = match expected {
            Expected::Bool => CelType::Bool,
            Expected::String => CelType::String,
            Expected::Any => return Ok(()),
        };
        if found != wanted && found != CelType::Dyn {
            return Err(format!(
                "must evaluate to {} but got {}",
                wanted.name(),
                found.name()
            ));
        }
        Ok(())
    })
    .unwrap_or_else(|| Err("compilation failed: the expression could not be compiled".into()))
}

/// What an admission expression sees: the JSON values bound to its variables.
#[derive(Clone, Debug, Default)]
pub struct Activation {
    /// `object`, `oldObject`, `request`, `namespaceObject`, `params` and their values (`null`
    /// where absent, as upstream binds them).
    pub values: Vec<(&'static str, Value)>,
    /// What `authorizer` answers with; `None` binds it to `null`.
    pub authorizer: Option<AuthorizerBinding>,
}

/// The outcome of one expression: its value as JSON, or the evaluator's error.
pub type Evaluated = Result<Value, String>;

fn to_json(value: &cel::Value) -> Value {
    match value {
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::from(*i),
        cel::Value::UInt(u) => Value::from(*u),
        cel::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        cel::Value::String(s) => Value::String(s.to_string()),
        cel::Value::Null => Value::Null,
        cel::Value::List(items) => Value::Array(items.iter().map(to_json).collect()),
        cel::Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map.map.iter() {
                out.insert(key.to_string(), to_json(value));
            }
            Value::Object(out)
        }
        other => Value::String(format!("{other:?}")),
    }
}

/// Evaluates the named `variables` in order (each may use the ones before it) and then every
/// expression, on the rule stack. A variable that fails makes each expression naming it fail
/// with the variable's error, as upstream's lazily evaluated variables do.
pub fn evaluate_all(
    activation: &Activation,
    variables: &[(String, String)],
    expressions: &[String],
) -> Vec<Evaluated> {
    let count = expressions.len();
    run_on_rule_stack(|| {
        let mut context = cel::Context::default();
        for (name, value) in &activation.values {
            if context.add_variable(*name, value).is_err() {
                context.add_variable_from_value(*name, cel::Value::Null);
            }
        }
        match &activation.authorizer {
            Some(binding) => {
                if let Err(error) = authz::bind(&mut context, binding) {
                    return vec![Err(format!("authorizer library: {error}")); count];
                }
            }
            None => context.add_variable_from_value("authorizer", cel::Value::Null),
        }
        let mut values: HashMap<String, cel::Value> = HashMap::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        for (name, expression) in variables {
            let outcome = run_expression(expression, &context);
            match outcome {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(error) => failed.push((name.clone(), error)),
            }
            context.add_variable_from_value("variables", values.clone());
        }
        expressions
            .iter()
            .map(|expression| {
                if let Some((_, error)) = failed
                    .iter()
                    .find(|(name, _)| expression.contains(&format!("variables.{name}")))
                {
                    return Err(error.clone());
                }
                run_expression(expression, &context).map(|v| to_json(&v))
            })
            .collect()
    })
    .unwrap_or_else(|| vec![Err("the expression could not be evaluated".to_string()); count])
}

fn run_expression(expression: &str, context: &cel::Context) -> Result<cel::Value, String> {
    check_bounds(expression)?;
    let program =
        cel::Program::compile(expression).map_err(|e| format!("compilation failed: {e}"))?;
    program.execute(context).map_err(|e| {
        let text = e.to_string();
        format!("expression '{expression}' resulted in error: {text}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: Declarations = Declarations {
        params: false,
        variables: false,
        namespace_object: true,
    };

    #[test]
    fn compile_table() {
        let with_params = Declarations {
            params: true,
            ..POLICY
        };
        let cases: Vec<(&str, Declarations, Expected, Result<(), &str>)> = vec![
            ("object.spec.replicas <= 5", POLICY, Expected::Bool, Ok(())),
            (
                "object.spec.replicas <= params.data.max",
                with_params,
                Expected::Bool,
                Ok(()),
            ),
            (
                "object.spec.replicas <= params.max",
                POLICY,
                Expected::Bool,
                Err("compilation failed: ERROR: <input>:1:25: undeclared reference to 'params' (in container '')\n | object.spec.replicas <= params.max\n | ........................^"),
            ),
            (
                "1 + 'a' == 2",
                POLICY,
                Expected::Bool,
                Err("compilation failed: ERROR: <input>:1:3: found no matching overload for '_+_' applied to '(int, string)'\n | 1 + 'a' == 2\n | ..^"),
            ),
            (
                "object.spec.replicas > 1 && 'yes'",
                POLICY,
                Expected::Bool,
                Err("compilation failed: ERROR: <input>:1:26: found no matching overload for '_&&_' applied to '(bool, string)'\n | object.spec.replicas > 1 && 'yes'\n | .........................^"),
            ),
            (
                "'text'",
                POLICY,
                Expected::Bool,
                Err("must evaluate to bool but got string"),
            ),
            ("'replicas: ' + string(object.spec.replicas)", POLICY, Expected::String, Ok(())),
            (
                "object.spec.containers.all(c, c.image.startsWith('r/'))",
                POLICY,
                Expected::Bool,
                Ok(()),
            ),
            ("size(object.metadata.name) < 3", POLICY, Expected::Bool, Ok(())),
        ];
        for (expression, declarations, expected, outcome) in cases {
            assert_eq!(
                compile(expression, declarations, expected),
                outcome.map_err(str::to_string),
                "{expression}"
            );
        }
        assert!(compile("object.spec.(", POLICY, Expected::Bool)
            .unwrap_err()
            .starts_with("compilation failed: ERROR: <input>:1:"));
    }

    #[test]
    fn variables_feed_expressions_and_errors_stay_with_their_users() {
        let activation = Activation {
            values: vec![("object", json!({"spec": {"replicas": 3}}))],
            authorizer: None,
        };
        let variables = vec![
            ("replicas".to_string(), "object.spec.replicas".to_string()),
            (
                "broken".to_string(),
                "object.spec.missing.deeper".to_string(),
            ),
        ];
        let results = evaluate_all(
            &activation,
            &variables,
            &[
                "variables.replicas <= 5".to_string(),
                "variables.broken == 1".to_string(),
            ],
        );
        assert_eq!(results[0], Ok(json!(true)));
        let error = results[1].clone().unwrap_err();
        assert!(
            error.starts_with("expression 'object.spec.missing.deeper' resulted in error: "),
            "{error}"
        );
    }
}
