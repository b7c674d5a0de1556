//! The `authorizer` library of admission CEL, as kube-apiserver's authz library gives it to
//! ValidatingAdmissionPolicy expressions: `authorizer.group(g).resource(r).namespace(ns)
//! .name(n).subresource(s).check(verb)`, `authorizer.path(p).check(verb)`,
//! `authorizer.serviceAccount(ns, name)` (the same checks for that ServiceAccount),
//! `authorizer.requestResource` (the request's own resource) and the decision's `allowed()`,
//! `reason()`, `errored()` and `error()`.
//!
//! The checks are answered synchronously by a [`PolicyAuthorizer`] the server passes in, so
//! evaluation stays on the rule thread; the server decides from its cached RBAC snapshot.

use std::fmt;
use std::sync::Arc;

use cel::extractors::This;
use cel::objects::Opaque;
use cel::{ExecutionError, Value};

/// Whom a check asks about: the request's user, or a ServiceAccount named by
/// `authorizer.serviceAccount(namespace, name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckSubject {
    /// The user who made the admission request.
    RequestUser,
    /// `system:serviceaccount:<namespace>:<name>`.
    ServiceAccount {
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },
}

/// What a check asks about: a resource (group, version, resource, subresource, namespace,
/// name) or a non-resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckTarget {
    /// A resource request.
    Resource(ResourceCheck),
    /// A non-resource request on this path.
    Path(String),
}

/// The resource a `ResourceCheck` names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceCheck {
    /// The API group, empty for the core group.
    pub group: String,
    /// The API version: `*`, as upstream asks about every version.
    pub version: String,
    /// The plural resource.
    pub resource: String,
    /// The subresource, or empty.
    pub subresource: String,
    /// The namespace, or empty for cluster-wide.
    pub namespace: String,
    /// The object's name, or empty for all.
    pub name: String,
    /// The field selector the check is limited to (`fieldSelector(...)`), or empty.
    pub field_selector: String,
    /// The label selector the check is limited to (`labelSelector(...)`), or empty.
    pub label_selector: String,
}

/// An authorizer's answer, as a `Decision` value exposes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckDecision {
    /// Whether the authorizer allows the action.
    pub allowed: bool,
    /// The authorizer's reason.
    pub reason: String,
    /// The error met while deciding, if any.
    pub error: Option<String>,
}

/// Answers the checks expressions make; implemented by the API server over its authorizer.
/// Synchronous, since CEL evaluation runs on its own thread without a runtime.
pub trait PolicyAuthorizer: Send + Sync {
    /// Decides whether `subject` may do `verb` on `target`.
    fn decide(&self, subject: &CheckSubject, verb: &str, target: &CheckTarget) -> CheckDecision;
}

/// A shared [`PolicyAuthorizer`], cloneable and printable so requests holding it stay so.
#[derive(Clone)]
pub struct SharedAuthorizer(pub Arc<dyn PolicyAuthorizer>);

impl fmt::Debug for SharedAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedAuthorizer")
    }
}

impl PartialEq for SharedAuthorizer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedAuthorizer {}

/// What `authorizer` is bound to for one evaluation: the authorizer and the request's
/// resource, for `authorizer.requestResource`.
#[derive(Clone, Debug)]
pub struct AuthorizerBinding {
    /// Who answers the checks.
    pub authorizer: SharedAuthorizer,
    /// The resource of the request being admitted (checked for any version, as upstream
    /// does).
    pub request_resource: ResourceCheck,
}

/// The type names upstream declares, used in type errors.
pub const AUTHORIZER_TYPE: &str = "kubernetes.authorization.Authorizer";
/// See [`AUTHORIZER_TYPE`].
pub const PATH_CHECK_TYPE: &str = "kubernetes.authorization.PathCheck";
/// See [`AUTHORIZER_TYPE`].
pub const GROUP_CHECK_TYPE: &str = "kubernetes.authorization.GroupCheck";
/// See [`AUTHORIZER_TYPE`].
pub const RESOURCE_CHECK_TYPE: &str = "kubernetes.authorization.ResourceCheck";
/// See [`AUTHORIZER_TYPE`].
pub const DECISION_TYPE: &str = "kubernetes.authorization.Decision";

#[derive(Clone, Debug, PartialEq, Eq)]
struct AuthorizerValue {
    authorizer: SharedAuthorizer,
    subject: CheckSubject,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GroupCheckValue {
    authorizer: AuthorizerValue,
    group: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ResourceCheckValue {
    authorizer: AuthorizerValue,
    check: ResourceCheck,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PathCheckValue {
    authorizer: AuthorizerValue,
    path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct DecisionValue(CheckDecision);

impl Opaque for AuthorizerValue {
    fn runtime_type_name(&self) -> &str {
        AUTHORIZER_TYPE
    }
}

impl Opaque for GroupCheckValue {
    fn runtime_type_name(&self) -> &str {
        GROUP_CHECK_TYPE
    }
}

impl Opaque for ResourceCheckValue {
    fn runtime_type_name(&self) -> &str {
        RESOURCE_CHECK_TYPE
    }
}

impl Opaque for PathCheckValue {
    fn runtime_type_name(&self) -> &str {
        PATH_CHECK_TYPE
    }
}

impl Opaque for DecisionValue {
    fn runtime_type_name(&self) -> &str {
        DECISION_TYPE
    }
}

fn opaque<T: Opaque>(value: T) -> Value {
    Value::Opaque(Arc::new(value))
}

fn no_overload(function: &str, target: &Value) -> ExecutionError {
    ExecutionError::function_error(
        function,
        format!("no such overload for {}", value_type_name(target)),
    )
}

fn value_type_name(value: &Value) -> String {
    match value {
        Value::Opaque(o) => o.runtime_type_name().to_string(),
        other => format!("{:?}", other.type_of()),
    }
}

fn target_as<'v, T: Opaque>(function: &str, target: &'v Value) -> Result<&'v T, ExecutionError> {
    match target {
        Value::Opaque(o) => o.downcast_ref::<T>(),
        _ => None,
    }
    .ok_or_else(|| no_overload(function, target))
}

/// The names of the library's member functions.
pub const FUNCTIONS: &[&str] = &[
    "path",
    "group",
    "serviceAccount",
    "resource",
    "subresource",
    "namespace",
    "name",
    "fieldSelector",
    "labelSelector",
    "check",
    "allowed",
    "reason",
    "errored",
    "error",
];

/// Binds `authorizer` and `authorizer.requestResource` and adds the library's functions to
/// `context`.
pub fn bind(context: &mut cel::Context, binding: &AuthorizerBinding) -> Result<(), String> {
    let root = AuthorizerValue {
        authorizer: binding.authorizer.clone(),
        subject: CheckSubject::RequestUser,
    };
    context.add_variable_from_value(
        "authorizer.requestResource",
        opaque(ResourceCheckValue {
            authorizer: root.clone(),
            check: ResourceCheck {
                version: "*".into(),
                ..binding.request_resource.clone()
            },
        }),
    );
    context.add_variable_from_value("authorizer", opaque(root));
    let fail = |e: cel::DeclarationError| format!("{e:?}");
    context
        .add_function("path", |This(this): This<Value>, path: Arc<String>| {
            let authorizer = target_as::<AuthorizerValue>("path", &this)?;
            Ok::<Value, ExecutionError>(opaque(PathCheckValue {
                authorizer: authorizer.clone(),
                path: path.to_string(),
            }))
        })
        .map_err(fail)?;
    context
        .add_function("group", |This(this): This<Value>, group: Arc<String>| {
            let authorizer = target_as::<AuthorizerValue>("group", &this)?;
            Ok::<Value, ExecutionError>(opaque(GroupCheckValue {
                authorizer: authorizer.clone(),
                group: group.to_string(),
            }))
        })
        .map_err(fail)?;
    context
        .add_function(
            "serviceAccount",
            |This(this): This<Value>, namespace: Arc<String>, name: Arc<String>| {
                let authorizer = target_as::<AuthorizerValue>("serviceAccount", &this)?;
                if !crate::validation::dns1123_subdomain_errors(&name).is_empty() {
                    return Err(ExecutionError::function_error(
                        "serviceAccount",
                        "Invalid service account name",
                    ));
                }
                if !crate::validation::dns1123_label_errors(&namespace).is_empty() {
                    return Err(ExecutionError::function_error(
                        "serviceAccount",
                        "Invalid service account namespace",
                    ));
                }
                Ok::<Value, ExecutionError>(opaque(AuthorizerValue {
                    authorizer: authorizer.authorizer.clone(),
                    subject: CheckSubject::ServiceAccount {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    },
                }))
            },
        )
        .map_err(fail)?;
    context
        .add_function(
            "resource",
            |This(this): This<Value>, resource: Arc<String>| {
                let group = target_as::<GroupCheckValue>("resource", &this)?;
                if resource.trim().is_empty() {
                    return Err(ExecutionError::function_error(
                        "resource",
                        "resource must not be empty",
                    ));
                }
                Ok::<Value, ExecutionError>(opaque(ResourceCheckValue {
                    authorizer: group.authorizer.clone(),
                    check: ResourceCheck {
                        group: group.group.clone(),
                        version: "*".into(),
                        resource: resource.to_string(),
                        ..ResourceCheck::default()
                    },
                }))
            },
        )
        .map_err(fail)?;
    for (function, set) in [
        (
            "subresource",
            (|c, v| c.subresource = v) as fn(&mut ResourceCheck, String),
        ),
        ("namespace", |c, v| c.namespace = v),
        ("name", |c, v| c.name = v),
        ("fieldSelector", |c, v| c.field_selector = v),
        ("labelSelector", |c, v| c.label_selector = v),
    ] {
        context
            .add_function(
                function,
                move |This(this): This<Value>, value: Arc<String>| {
                    let mut check = target_as::<ResourceCheckValue>(function, &this)?.clone();
                    set(&mut check.check, value.to_string());
                    Ok::<Value, ExecutionError>(opaque(check))
                },
            )
            .map_err(fail)?;
    }
    context
        .add_function("check", |This(this): This<Value>, verb: Arc<String>| {
            let (authorizer, target) = match &this {
                Value::Opaque(o) => {
                    if let Some(r) = o.downcast_ref::<ResourceCheckValue>() {
                        (&r.authorizer, CheckTarget::Resource(r.check.clone()))
                    } else if let Some(p) = o.downcast_ref::<PathCheckValue>() {
                        (&p.authorizer, CheckTarget::Path(p.path.clone()))
                    } else {
                        return Err(no_overload("check", &this));
                    }
                }
                _ => return Err(no_overload("check", &this)),
            };
            let decision = authorizer
                .authorizer
                .0
                .decide(&authorizer.subject, &verb, &target);
            Ok::<Value, ExecutionError>(opaque(DecisionValue(decision)))
        })
        .map_err(fail)?;
    context
        .add_function("allowed", |This(this): This<Value>| {
            let decision = target_as::<DecisionValue>("allowed", &this)?;
            Ok::<Value, ExecutionError>(Value::Bool(decision.0.allowed))
        })
        .map_err(fail)?;
    context
        .add_function("errored", |This(this): This<Value>| {
            let decision = target_as::<DecisionValue>("errored", &this)?;
            Ok::<Value, ExecutionError>(Value::Bool(decision.0.error.is_some()))
        })
        .map_err(fail)?;
    context
        .add_function("reason", |This(this): This<Value>| {
            let decision = target_as::<DecisionValue>("reason", &this)?;
            Ok::<Value, ExecutionError>(Value::String(Arc::new(decision.0.reason.clone())))
        })
        .map_err(fail)?;
    context
        .add_function("error", |This(this): This<Value>| {
            let decision = target_as::<DecisionValue>("error", &this)?;
            Ok::<Value, ExecutionError>(Value::String(Arc::new(
                decision.0.error.clone().unwrap_or_default(),
            )))
        })
        .map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission_cel::{compile, evaluate_all, Activation, Declarations, Expected};
    use serde_json::json;
    use std::sync::Mutex;

    type Asked = (CheckSubject, String, CheckTarget);

    /// Allows the request user to update ConfigMaps in `team-a` and to get `/healthz`, the
    /// ServiceAccount `kube-system/robot` everything; errs on the resource `broken`. Records
    /// every check.
    #[derive(Default)]
    struct TableAuthorizer {
        asked: Mutex<Vec<Asked>>,
    }

    impl PolicyAuthorizer for TableAuthorizer {
        fn decide(
            &self,
            subject: &CheckSubject,
            verb: &str,
            target: &CheckTarget,
        ) -> CheckDecision {
            self.asked
                .lock()
                .unwrap()
                .push((subject.clone(), verb.to_string(), target.clone()));
            let robot = CheckSubject::ServiceAccount {
                namespace: "kube-system".into(),
                name: "robot".into(),
            };
            if *subject == robot {
                return CheckDecision {
                    allowed: true,
                    reason: "robot may".into(),
                    error: None,
                };
            }
            match target {
                CheckTarget::Resource(r) if r.resource == "broken" => CheckDecision {
                    allowed: false,
                    reason: String::new(),
                    error: Some("rules could not be read".into()),
                },
                CheckTarget::Resource(r) => CheckDecision {
                    allowed: r.group.is_empty()
                        && r.resource == "configmaps"
                        && r.namespace == "team-a"
                        && verb == "update",
                    reason: "by table".into(),
                    error: None,
                },
                CheckTarget::Path(path) => CheckDecision {
                    allowed: path == "/healthz" && verb == "get",
                    reason: String::new(),
                    error: None,
                },
            }
        }
    }

    const POLICY: Declarations = Declarations {
        params: false,
        variables: false,
        namespace_object: true,
    };

    fn evaluate(authorizer: Arc<TableAuthorizer>, expressions: &[&str]) -> Vec<serde_json::Value> {
        let activation = Activation {
            values: vec![("object", json!({"metadata": {"namespace": "team-a"}}))],
            authorizer: Some(AuthorizerBinding {
                authorizer: SharedAuthorizer(authorizer),
                request_resource: ResourceCheck {
                    group: "apps".into(),
                    version: "v1".into(),
                    resource: "deployments".into(),
                    subresource: "scale".into(),
                    namespace: "team-a".into(),
                    name: "web".into(),
                    ..ResourceCheck::default()
                },
            }),
        };
        let expressions: Vec<String> = expressions.iter().map(|e| e.to_string()).collect();
        evaluate_all(&activation, &[], &expressions)
            .into_iter()
            .zip(&expressions)
            .map(|(result, e)| result.unwrap_or_else(|error| panic!("{e}: {error}")))
            .collect()
    }

    #[test]
    fn checks_answer_with_the_authorizers_decision() {
        let table: Vec<(&str, serde_json::Value)> = vec![
            (
                "authorizer.group('').resource('configmaps').namespace(object.metadata.namespace).check('update').allowed()",
                json!(true),
            ),
            (
                "authorizer.group('').resource('configmaps').namespace('team-b').check('update').allowed()",
                json!(false),
            ),
            (
                "authorizer.group('').resource('configmaps').namespace('team-a').check('delete').allowed()",
                json!(false),
            ),
            (
                "authorizer.group('').resource('configmaps').namespace('team-a').check('update').reason()",
                json!("by table"),
            ),
            ("authorizer.path('/healthz').check('get').allowed()", json!(true)),
            ("authorizer.path('/metrics').check('get').allowed()", json!(false)),
            (
                "authorizer.serviceAccount('kube-system', 'robot').group('apps').resource('deployments').check('delete').allowed()",
                json!(true),
            ),
            (
                "authorizer.group('').resource('broken').check('get').errored()",
                json!(true),
            ),
            (
                "authorizer.group('').resource('broken').check('get').error()",
                json!("rules could not be read"),
            ),
            (
                "authorizer.group('').resource('configmaps').check('get').errored()",
                json!(false),
            ),
            (
                "authorizer.group('').resource('configmaps').check('get').error()",
                json!(""),
            ),
            ("authorizer.requestResource.check('update').allowed()", json!(false)),
        ];
        for (expression, expected) in table {
            let authorizer = Arc::new(TableAuthorizer::default());
            assert_eq!(
                compile(expression, POLICY, Expected::Any),
                Ok(()),
                "{expression} must compile"
            );
            assert_eq!(
                evaluate(authorizer, &[expression]),
                vec![expected],
                "{expression}"
            );
        }
    }

    #[test]
    fn checks_carry_every_attribute_named() {
        let authorizer = Arc::new(TableAuthorizer::default());
        evaluate(
            authorizer.clone(),
            &[
                "authorizer.group('apps').resource('deployments').subresource('scale').namespace('ns1').name('web').check('patch').allowed()",
                "authorizer.requestResource.check('update').allowed()",
                "authorizer.serviceAccount('ns2', 'builder').path('/readyz').check('get').allowed()",
                "authorizer.group('').resource('pods').fieldSelector('spec.nodeName=n1').labelSelector('app=web').check('list').allowed()",
            ],
        );
        let asked = authorizer.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            vec![
                (
                    CheckSubject::RequestUser,
                    "patch".to_string(),
                    CheckTarget::Resource(ResourceCheck {
                        group: "apps".into(),
                        version: "*".into(),
                        resource: "deployments".into(),
                        subresource: "scale".into(),
                        namespace: "ns1".into(),
                        name: "web".into(),
                        ..ResourceCheck::default()
                    })
                ),
                (
                    CheckSubject::RequestUser,
                    "update".to_string(),
                    CheckTarget::Resource(ResourceCheck {
                        group: "apps".into(),
                        version: "*".into(),
                        resource: "deployments".into(),
                        subresource: "scale".into(),
                        namespace: "team-a".into(),
                        name: "web".into(),
                        ..ResourceCheck::default()
                    })
                ),
                (
                    CheckSubject::ServiceAccount {
                        namespace: "ns2".into(),
                        name: "builder".into()
                    },
                    "get".to_string(),
                    CheckTarget::Path("/readyz".into())
                ),
                (
                    CheckSubject::RequestUser,
                    "list".to_string(),
                    CheckTarget::Resource(ResourceCheck {
                        group: String::new(),
                        version: "*".into(),
                        resource: "pods".into(),
                        field_selector: "spec.nodeName=n1".into(),
                        label_selector: "app=web".into(),
                        ..ResourceCheck::default()
                    })
                ),
            ]
        );
    }

    #[test]
    fn a_variable_may_hold_a_decision() {
        let activation = Activation {
            values: Vec::new(),
            authorizer: Some(AuthorizerBinding {
                authorizer: SharedAuthorizer(Arc::new(TableAuthorizer::default())),
                request_resource: ResourceCheck::default(),
            }),
        };
        let variables = vec![(
            "update".to_string(),
            "authorizer.group('').resource('configmaps').namespace('team-a').check('update')"
                .to_string(),
        )];
        let results = evaluate_all(
            &activation,
            &variables,
            &[
                "variables.update.allowed()".to_string(),
                "variables.update.reason()".to_string(),
            ],
        );
        assert_eq!(results, vec![Ok(json!(true)), Ok(json!("by table"))]);
    }

    #[test]
    fn bad_arguments_are_evaluation_errors_in_upstreams_words() {
        let authorizer = Arc::new(TableAuthorizer::default());
        let activation = Activation {
            values: Vec::new(),
            authorizer: Some(AuthorizerBinding {
                authorizer: SharedAuthorizer(authorizer.clone()),
                request_resource: ResourceCheck::default(),
            }),
        };
        let table = [
            (
                "authorizer.serviceAccount('ns', 'Not_Valid').path('/').check('get').allowed()",
                "Invalid service account name",
            ),
            (
                "authorizer.serviceAccount('Bad.NS', 'ok').path('/').check('get').allowed()",
                "Invalid service account namespace",
            ),
            (
                "authorizer.group('').resource(' ').check('get').allowed()",
                "resource must not be empty",
            ),
        ];
        for (expression, message) in table {
            let results = evaluate_all(&activation, &[], &[expression.to_string()]);
            let error = results[0]
                .clone()
                .expect_err(&format!("{expression} must fail"));
            assert!(error.contains(message), "{expression}: {error}");
        }
        assert!(
            authorizer.asked.lock().unwrap().is_empty(),
            "no check is made with bad arguments"
        );
    }

    #[test]
    fn wrong_calls_are_type_errors_at_compile_time() {
        let table: Vec<(&str, Expected, &str)> = vec![
            (
                "authorizer.group('').resource('pods').check(1).allowed()",
                Expected::Bool,
                "found no matching overload for 'check' applied to 'kubernetes.authorization.ResourceCheck.(int)'",
            ),
            (
                "authorizer.resource('pods').check('get').allowed()",
                Expected::Bool,
                "found no matching overload for 'resource' applied to 'kubernetes.authorization.Authorizer.(string)'",
            ),
            (
                "authorizer.group('').check('get').allowed()",
                Expected::Bool,
                "found no matching overload for 'check' applied to 'kubernetes.authorization.GroupCheck.(string)'",
            ),
            (
                "authorizer.serviceAccount('ns').group('').resource('pods').check('get').allowed()",
                Expected::Bool,
                "found no matching overload for 'serviceAccount' applied to 'kubernetes.authorization.Authorizer.(string)'",
            ),
            (
                "authorizer.path('/x').check('get').allowed(1)",
                Expected::Bool,
                "found no matching overload for 'allowed' applied to 'kubernetes.authorization.Decision.(int)'",
            ),
            (
                "authorizer.requestResource.check('get').size() > 0",
                Expected::Bool,
                "found no matching overload for 'size' applied to 'kubernetes.authorization.Decision.()'",
            ),
            (
                "authorizer.user == 'x'",
                Expected::Bool,
                "undefined field 'user'",
            ),
        ];
        for (expression, expected, message) in table {
            let error = compile(expression, POLICY, expected)
                .expect_err(&format!("{expression} must not compile"));
            assert!(
                error.starts_with("compilation failed: ERROR: <input>:1:")
                    && error.contains(message),
                "{expression}: {error}"
            );
        }
        assert_eq!(
            compile(
                "authorizer.group('').check('update').allowed()",
                POLICY,
                Expected::Bool
            ),
            Err("compilation failed: ERROR: <input>:1:27: found no matching overload for 'check' applied to 'kubernetes.authorization.GroupCheck.(string)'\n | authorizer.group('').check('update').allowed()\n | ..........................^".to_string()),
            "cel-go points at the call's opening parenthesis"
        );
        assert_eq!(
            compile("authorizer.path('/x').check('get')", POLICY, Expected::Bool),
            Err("must evaluate to bool but got kubernetes.authorization.Decision".to_string())
        );
        assert_eq!(
            compile(
                "authorizer.path('/x').check('get').reason()",
                POLICY,
                Expected::String
            ),
            Ok(())
        );
    }

    #[test]
    fn without_an_authorizer_the_variable_is_null() {
        let activation = Activation::default();
        let results = evaluate_all(&activation, &[], &["authorizer == null".to_string()]);
        assert_eq!(results, vec![Ok(json!(true))]);
    }
}
