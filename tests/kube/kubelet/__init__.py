"""A process kubelet for the Kubernetes API emulator (test infrastructure).

It talks to the API server only through the REST API (kubernetes_asyncio with a
kubeconfig), so it works against the emulator or a real API server alike. One
node, ``emulated-node``:

* **Scheduling**: pods without ``spec.nodeName`` are bound through the
  ``pods/binding`` subresource (falling back to a JSON patch of ``nodeName``).
* **Containers** run as local process groups: ``command`` + ``args`` (the image
  is ignored; names resolve on the venv's ``PATH``). Init containers run first,
  in order. ``restartPolicy`` Always/OnFailure/Never is honoured; restarts back
  off 1 s doubling to 10 s (status ``CrashLoopBackOff`` while waiting).
* **Networking**: each pod gets its own loopback IP from 127.1.0.0/16 in
  ``status.podIP``. Nothing can confine a process that binds ``0.0.0.0`` or
  ``""``: pod commands should bind ``$(POD_IP)`` (a ``fieldRef`` to
  ``status.podIP``), as two pods binding the same port on all interfaces clash.
* **Environment**: a minimal base (``PATH``, ``HOME``, ``HOSTNAME``,
  ``KUBERNETES_SERVICE_HOST/PORT`` of the API server, locale/venv variables),
  then ``envFrom``, then ``env`` with ``$(VAR)`` expansion, ``fieldRef``
  (``metadata.name/namespace/uid/labels['x']/annotations['x']``,
  ``spec.nodeName``, ``status.podIP``), ``resourceFieldRef``,
  ``secretKeyRef`` and ``configMapKeyRef``. ``$(VAR)`` is expanded in command
  and args too. A missing Secret/ConfigMap keeps the container waiting
  (``CreateContainerConfigError``) and is retried every second.
* **Volumes**: ``secret``, ``configMap``, ``downwardAPI``, ``projected`` and
  ``emptyDir`` (others become empty dirs) are written under the pod's work dir.
  Any env value, arg or ``workingDir`` that starts with a ``mountPath`` (also
  ``--opt=<mountPath>...``) is rewritten to the local directory. Volume
  contents are written once at pod start (no live updates).
* **Service names** (cluster DNS stand-in) in env values and args, after
  expansion, are rewritten to addresses: ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and
  ``<svc>.<ns>.svc.cluster.local`` anywhere as a whole host token; a bare
  ``<svc>`` (pod's namespace) only when it is the whole host of a URL
  (``scheme://svc[:port][/...]``) or the whole value is ``svc:port``. A normal
  Service maps to its loopback ClusterIP; a headless one to its first ready
  endpoint. A ``.svc`` name of a Service that does not exist yet gets its
  ClusterIP reserved; two-part names of unknown Services stay untouched.
* **Probes**: startup/readiness/liveness ``httpGet``, ``tcpSocket``, ``exec``
  against the pod IP with the spec's delay, period (first probe right after
  start), timeout and thresholds.
* **Status** via ``pods/status`` (JSON patch of the whole block, only when it
  changed): phase, conditions, container states with exit codes, restarts.
* **Logs** append to :func:`log_path` (``<workdir>/logs/<ns>_<pod>_<c>.log``).
* **Deletion** (``deletionTimestamp``): SIGTERM, wait the grace period (capped
  at 10 s), SIGKILL, then the pod object is deleted with grace period 0.
* **EndpointSlices** (``discovery.k8s.io/v1``, ``<svc>-emulated``) for every
  Service with a selector, with ready/serving/terminating conditions.
* **Simulated pods** (``simulated=True``, or per pod the annotation
  ``emulated.kubelet/simulated: "true"|"false"``): no process, no volumes, no
  probes; bound, given an IP and reported Running and Ready at once, removed
  at once on deletion (KWOK-style, for benchmarks at scale).
* **kube-proxy**: Services get a ClusterIP from 127.2.0.0/16 (written to
  ``spec.clusterIP`` when empty; an address outside it is mapped locally) and
  every TCP port of it forwards to a ready endpoint, round robin.
"""

from .kubelet import NODE_NAME, Kubelet, log_path, start_kubelet

__all__ = ["NODE_NAME", "Kubelet", "log_path", "start_kubelet"]
