//! The cases of kube-apiserver's `requestinfo_test.go`.

use super::*;

/// Method, URL, verb, group, version, namespace, resource, subresource, name, parts.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

fn split(url: &str) -> (&str, Option<&str>) {
    match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    }
}

#[test]
fn resource_requests() {
    let cases: &[Case] = &[
        (
            "GET",
            "/api/v1/namespaces",
            "list",
            "",
            "v1",
            "",
            "namespaces",
            "",
            "",
            &["namespaces"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other",
            "get",
            "",
            "v1",
            "other",
            "namespaces",
            "",
            "other",
            &["namespaces", "other"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods",
            "list",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo",
            "get",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo"],
        ),
        (
            "HEAD",
            "/api/v1/namespaces/other/pods/foo",
            "get",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo"],
        ),
        (
            "GET",
            "/api/v1/pods",
            "list",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "HEAD",
            "/api/v1/pods",
            "list",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "PATCH",
            "/api/v1/namespaces/new-namespace",
            "patch",
            "",
            "v1",
            "",
            "namespaces",
            "",
            "new-namespace",
            &["namespaces", "new-namespace"],
        ),
        // Special verbs.
        (
            "GET",
            "/api/v1/proxy/namespaces/other/pods/foo",
            "proxy",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo"],
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
            "proxy",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo", "subpath", "not", "a", "subresource"],
        ),
        (
            "GET",
            "/api/v1/watch/pods",
            "watch",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/pods?watch=true",
            "watch",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/pods?watch=false",
            "list",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/other/pods",
            "watch",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods?watch=1",
            "watch",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods?watch=0",
            "list",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        // Subresources.
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo/status",
            "get",
            "",
            "v1",
            "other",
            "pods",
            "status",
            "foo",
            &["pods", "foo", "status"],
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo/proxy/subpath",
            "get",
            "",
            "v1",
            "other",
            "pods",
            "proxy",
            "foo",
            &["pods", "foo", "proxy", "subpath"],
        ),
        (
            "PUT",
            "/api/v1/namespaces/other/finalize",
            "update",
            "",
            "v1",
            "other",
            "namespaces",
            "finalize",
            "other",
            &["namespaces", "other", "finalize"],
        ),
        (
            "PUT",
            "/api/v1/namespaces/other/status",
            "update",
            "",
            "v1",
            "other",
            "namespaces",
            "status",
            "other",
            &["namespaces", "other", "status"],
        ),
        // Verbs.
        (
            "PATCH",
            "/api/v1/namespaces/other/pods/foo",
            "patch",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo"],
        ),
        (
            "DELETE",
            "/api/v1/namespaces/other/pods/foo",
            "delete",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            &["pods", "foo"],
        ),
        (
            "POST",
            "/api/v1/namespaces/other/pods",
            "create",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        // deletecollection.
        (
            "DELETE",
            "/api/v1/nodes",
            "deletecollection",
            "",
            "v1",
            "",
            "nodes",
            "",
            "",
            &["nodes"],
        ),
        (
            "DELETE",
            "/api/v1/namespaces",
            "deletecollection",
            "",
            "v1",
            "",
            "namespaces",
            "",
            "",
            &["namespaces"],
        ),
        (
            "DELETE",
            "/api/v1/namespaces/other/pods",
            "deletecollection",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "DELETE",
            "/apis/extensions/v1/namespaces/other/pods",
            "deletecollection",
            "extensions",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        // Groups and versions.
        (
            "POST",
            "/apis/extensions/v1/namespaces/other/pods",
            "create",
            "extensions",
            "v1",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
        (
            "POST",
            "/apis/extensions/v1beta3/namespaces/other/pods",
            "create",
            "extensions",
            "v1beta3",
            "other",
            "pods",
            "",
            "",
            &["pods"],
        ),
    ];
    for &(method, url, verb, group, version, namespace, resource, sub, name, parts) in cases {
        let (path, query) = split(url);
        let info = request_info(method, path, query).expect("parses");
        assert!(info.is_resource_request, "{method} {url}");
        let got = (
            info.verb.as_str(),
            info.api_group.as_str(),
            info.api_version.as_str(),
            info.namespace.as_str(),
            info.resource.as_str(),
            info.subresource.as_str(),
            info.name.as_str(),
        );
        assert_eq!(
            got,
            (verb, group, version, namespace, resource, sub, name),
            "{method} {url}"
        );
        assert_eq!(info.parts, parts, "{method} {url}");
    }
}

#[test]
fn paths_without_a_resource_are_non_resource_requests() {
    for url in [
        "/",
        "/api/version/",
        "/apis/group/version/",
        "/badprefix/version/resource",
        "/apis/version/resource",
        "/not-api/version/resource",
        "/apis/extensions/v1beta1",
        "/apis/extensions/v1beta1/",
        "/api/version",
        "/api",
        "",
    ] {
        let info = request_info("GET", url, None).expect("parses");
        assert!(!info.is_resource_request, "{url}");
        assert_eq!(info.verb, "get", "{url}");
        assert_eq!(info.path, url);
    }
    for url in [
        "/api/version/resource",
        "/apis/group/version/resource/name/subresource",
        "/api/version/resource/name/subresource",
        "/apis/batch/v1/job",
        "/apis/batch/v1/job/foo",
        "/apis/batch/v1/job/foo/scale",
    ] {
        assert!(
            request_info("GET", url, None)
                .expect("parses")
                .is_resource_request,
            "{url}"
        );
    }
    let post = request_info("POST", "/healthz", None).expect("parses");
    assert_eq!(post.verb, "post");
}

#[test]
fn a_special_verb_needs_a_resource_after_it() {
    assert!(request_info("GET", "/api/v1/watch", None).is_err());
}

#[test]
fn a_metadata_name_field_selector_names_the_object_of_a_list() {
    // (query, name, verb)
    let cases = [
        ("", "", "list"),
        ("fieldSelector=metadata.name=name1", "name1", "list"),
        (
            "watch=true&fieldSelector=metadata.name=name1",
            "name1",
            "watch",
        ),
        ("fieldSelector=foo=bar", "", "list"),
        ("fieldSelector=metadata.name=name1,foo", "", "list"),
        (
            "fieldSelector=metadata.name=name1,foo&watch=true",
            "",
            "watch",
        ),
        (
            "fieldSelector=metadata.name=name1,foo&watch=false",
            "",
            "list",
        ),
        ("fieldSelector=metadata.name%3Dname2", "name2", "list"),
        ("fieldSelector=metadata.name%3Da%2Fb", "", "list"),
    ];
    for (query, name, verb) in cases {
        let info =
            request_info("GET", "/apis/group/version/resource", Some(query)).expect("parses");
        assert_eq!(
            (info.name.as_str(), info.verb.as_str()),
            (name, verb),
            "{query}"
        );
    }
}

#[test]
fn attributes_carry_what_the_request_info_read() {
    let info = request_info(
        "GET",
        "/apis/apps/v1/namespaces/dev/deployments/web/scale",
        None,
    )
    .expect("parses");
    let attrs = info.attributes(UserInfo::new("jane", &[]));
    assert_eq!(
        attrs.forbidden_message(""),
        r#"deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" in API group "apps" in the namespace "dev""#
    );
    let info = request_info("GET", "/healthz", None).expect("parses");
    assert_eq!(
        info.attributes(UserInfo::new("system:anonymous", &[]))
            .forbidden_message(""),
        r#"forbidden: User "system:anonymous" cannot get path "/healthz""#
    );
}
