//! Manifests several end-to-end test files apply, with the test images' names put in, so each
//! workload shape is written once.

use super::images::{DEMO, SHELL};

/// The pod `client`: busybox sleeping, from which tests send requests with `kubectl exec`.
/// `sleep` as PID 1 ignores SIGTERM, so it gets a one-second grace period.
pub fn client_pod() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: {SHELL}
    command: [\"sleep\", \"3600\"]
"
    )
}

/// The headless Service `web` and the StatefulSet `web` governed by it: `replicas` busybox
/// pods running `/bin/sh -c script`, each with its claim `data` (1Gi of the default class)
/// mounted at `/data`; with a `marker`, the container's environment holds it as `MARKER`, so
/// changing it makes a new revision.
pub fn web_stateful_set(replicas: u32, script: &str, marker: Option<&str>) -> String {
    let env = marker
        .map(|marker| {
            format!(
                "        env:
        - name: MARKER
          value: {marker}
"
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {SHELL}
{env}        command: [\"/bin/sh\", \"-c\", \"{script}\"]
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"
    )
}

/// The NodePort Service `web` in front of the pods labelled `app: web`, port 80.
pub const WEB_NODE_PORT_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
";

/// An OpenKruise CloneSet `web` of `replicas` demo servers at `v1` that updates its pods in
/// place (`InPlaceIfPossible`, one at a time, no grace), ready once `/readyz` answers, behind
/// [`WEB_NODE_PORT_SERVICE`].
pub fn in_place_web_clone_set(replicas: u32) -> String {
    format!(
        "apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  updateStrategy:
    type: InPlaceIfPossible
    maxUnavailable: 1
    inPlaceUpdateStrategy:
      gracePeriodSeconds: 0
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {DEMO}:v1
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /readyz
            port: 80
          periodSeconds: 1
---
{WEB_NODE_PORT_SERVICE}"
    )
}
