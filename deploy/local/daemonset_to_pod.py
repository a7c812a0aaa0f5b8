#!/usr/bin/env python3
"""Turns the meshd DaemonSet, as rendered by `kubectl kustomize`, into the Pod that the
DaemonSet controller would create on one node, for `podman kube play` (deploy/local/pods.sh).

  daemonset_to_pod.py RENDERED.yaml --node NAME --image REF --out DIR \
      --host-path /var/lib/meshd=DIR --host-path /sys/fs/bpf=DIR ...

The pod spec is the DaemonSet's pod template, copied; only what the DaemonSet controller and
the kubelet would fill in, plus what podman 4.3 cannot run, is changed:
  - metadata: the pod's name (<daemonset>-<node>), namespace and the template's labels;
    spec.nodeName = NAME;
  - the image of every container (init containers included) = REF;
  - every hostPath volume's path, through the --host-path map: a "node" here is a network
    namespace on a shared machine, so its host directories live elsewhere. A hostPath the
    map does not name is an error, so a new hostPath in the manifests never reaches into
    the real host unnoticed;
  - `ports:` are dropped: with hostNetwork they only document the port, and podman 4.3
    refuses them ("PortMappings can only be used with Bridge or slirp4netns networking");
  - seccompProfile fields (pod and container) are also written as the annotations podman
    4.3 reads instead of the fields (it ignores the fields);
  - restartPolicy OnFailure: a DaemonSet's is Always, with which podman restarts the
    run-once init containers and then fails removing them.
Every ConfigMap of the rendering is written next to the pod, as a file for
`kube play --configmap`. Writes DIR/pod.yaml and DIR/configmap-<name>.yaml; prints the
pod's name.
"""
import argparse
import copy
import os
import sys

import yaml


def fail(message):
    sys.exit(f"daemonset_to_pod: {message}")


def seccomp_annotation(profile):
    """A seccompProfile field as the annotation value podman 4.3 reads instead of the field
    (the kubelet hands the field to the runtime; podman's kube play knows only the
    annotations that preceded it)."""
    kind = profile["type"]
    if kind == "RuntimeDefault":
        return "runtime/default"
    if kind == "Unconfined":
        return "unconfined"
    if kind == "Localhost":
        return "localhost/" + profile["localhostProfile"]
    fail(f"seccompProfile type '{kind}' is not one of RuntimeDefault, Unconfined, Localhost")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rendered", help="output of kubectl kustomize (multi-document YAML)")
    ap.add_argument("--node", required=True, help="the node's name (spec.nodeName)")
    ap.add_argument("--image", required=True, help="image of every container")
    ap.add_argument("--out", required=True, help="directory for pod.yaml and the ConfigMaps")
    ap.add_argument("--daemonset", default="meshd", help="name of the DaemonSet (default meshd)")
    ap.add_argument("--host-path", action="append", default=[], metavar="PATH=DIR",
                    help="where the node's PATH is (repeat for every hostPath volume)")
    args = ap.parse_args()

    host_paths = {}
    for entry in args.host_path:
        path, sep, target = entry.partition("=")
        if not sep or not path.startswith("/") or not target.startswith("/"):
            fail(f"--host-path '{entry}': expected /PATH=/DIR")
        host_paths[path] = target

    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    daemonsets = [d for d in docs if d.get("kind") == "DaemonSet"
                  and d["metadata"]["name"] == args.daemonset]
    if len(daemonsets) != 1:
        fail(f"{args.rendered}: expected one DaemonSet '{args.daemonset}', found {len(daemonsets)}")
    ds = daemonsets[0]
    template = ds["spec"]["template"]

    spec = copy.deepcopy(template["spec"])
    spec["nodeName"] = args.node
    spec["restartPolicy"] = "OnFailure"
    annotations = dict(template.get("metadata", {}).get("annotations", {}))
    pod_seccomp = spec.get("securityContext", {}).get("seccompProfile")
    if pod_seccomp:
        annotations["seccomp.security.alpha.kubernetes.io/pod"] = seccomp_annotation(pod_seccomp)
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["image"] = args.image
        c.pop("ports", None)
        seccomp = c.get("securityContext", {}).get("seccompProfile")
        if seccomp:
            key = f"container.seccomp.security.alpha.kubernetes.io/{c['name']}"
            annotations[key] = seccomp_annotation(seccomp)
    for v in spec.get("volumes", []):
        if "hostPath" not in v:
            continue
        path = v["hostPath"]["path"]
        if path not in host_paths:
            fail(f"volume '{v['name']}': hostPath {path} has no --host-path {path}=DIR")
        v["hostPath"]["path"] = host_paths.pop(path)
    if host_paths:
        fail(f"--host-path {', '.join(host_paths)}: no hostPath volume uses it")

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{args.daemonset}-{args.node}",
            "namespace": ds["metadata"].get("namespace", "default"),
            "labels": dict(template.get("metadata", {}).get("labels", {})),
            "annotations": annotations,
        },
        "spec": spec,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "pod.yaml"), "w") as f:
        yaml.safe_dump(pod, f, sort_keys=False)
    for cm in (d for d in docs if d.get("kind") == "ConfigMap"):
        with open(os.path.join(args.out, f"configmap-{cm['metadata']['name']}.yaml"), "w") as f:
            yaml.safe_dump(cm, f, sort_keys=False)
    print(pod["metadata"]["name"])


if __name__ == "__main__":
    main()
