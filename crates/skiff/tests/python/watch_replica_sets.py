"""Watches the ReplicaSets of a namespace with the official Kubernetes Python client until a
rollout has moved every replica from one ReplicaSet to another.

Usage: watch_replica_sets.py KUBECONFIG NAMESPACE REPLICAS OLD_REPLICA_SET

Prints WATCHING once the watch is open, one line per event, and DONE when OLD_REPLICA_SET has
no replicas left and another ReplicaSet has REPLICAS. Any error the client raises (for instance on an
object whose shape it cannot deserialize) ends the script with a traceback and a non-zero exit.
"""

import sys

from kubernetes import client, config, watch


def main():
    kubeconfig, namespace, replicas, old = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    config.load_kube_config(config_file=kubeconfig)
    apps = client.AppsV1Api()
    current = {}
    print("WATCHING", flush=True)
    stream = watch.Watch().stream(
        apps.list_namespaced_replica_set, namespace=namespace, timeout_seconds=120
    )
    for event in stream:
        rs = event["object"]
        current[rs.metadata.name] = rs.status.replicas
        print(event["type"], rs.metadata.name, rs.status.replicas, flush=True)
        replaced = any(n != old and count == replicas for n, count in current.items())
        if current.get(old) == 0 and replaced:
            print("DONE", flush=True)
            return 0
    print("the watch ended before the rollout finished", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
