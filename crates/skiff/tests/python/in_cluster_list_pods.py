"""Lists the pods of a namespace as an in-cluster client does: the official Python client's
in-cluster configuration, from a directory holding what a pod finds mounted at
/var/run/secrets/kubernetes.io/serviceaccount (token, ca.crt, namespace) and the
KUBERNETES_SERVICE_HOST and _PORT a pod sees.

Usage: in_cluster_list_pods.py CREDENTIALS_DIR HOST PORT

Prints one pod name a line, or `HTTP <status> <message>` when the API refuses.
"""

import json
import os
import sys

from kubernetes import client
from kubernetes.config.incluster_config import InClusterConfigLoader


def main():
    credentials, host, port = sys.argv[1:4]
    InClusterConfigLoader(
        token_filename=os.path.join(credentials, "token"),
        cert_filename=os.path.join(credentials, "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
    ).load_and_set()
    with open(os.path.join(credentials, "namespace")) as f:
        namespace = f.read()
    try:
        pods = client.CoreV1Api().list_namespaced_pod(namespace)
    except client.ApiException as e:
        print(f"HTTP {e.status} {json.loads(e.body)['message']}")
        return
    for pod in pods.items:
        print(pod.metadata.name)


if __name__ == "__main__":
    main()
