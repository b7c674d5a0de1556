"""Lists and watches the Widgets of a namespace with the official Kubernetes Python client's
dynamic client, which finds the resource through discovery as operators' clients do.

Usage: dynamic_custom_objects.py KUBECONFIG NAMESPACE

Prints `LISTED <names>` with the names the list returned, then one `<TYPE> <name>` line per
watch event; after the first event it creates the Widget `from-python` through the same client
and prints DONE once the watch delivers its ADDED event. Any error the client raises ends the
script with a traceback and a non-zero exit.
"""

import sys

from kubernetes import config, dynamic


def main():
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    client = dynamic.DynamicClient(config.new_client_from_config(config_file=kubeconfig))
    widgets = client.resources.get(api_version="example.com/v1", kind="Widget")
    listed = widgets.get(namespace=namespace)
    names = sorted(item.metadata.name for item in listed.items)
    print("LISTED", " ".join(names), flush=True)
    created = False
    for event in widgets.watch(namespace=namespace, timeout=60):
        name = event["object"].metadata.name
        print(event["type"], name, flush=True)
        if not created:
            widgets.create(
                namespace=namespace,
                body={
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "from-python"},
                    "spec": {"color": "red"},
                },
            )
            created = True
        if event["type"] == "ADDED" and name == "from-python":
            print("DONE", flush=True)
            return 0
    print("the watch ended before the created Widget was seen", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
