// Package cluster runs a real Kubernetes control plane on one machine, with pods run as
// local processes, for FleetMQ's end-to-end tests and `make dev`.
//
// There is no container runtime or image registry where FleetMQ is developed, so kind, k3s
// and minikube are out. What runs instead:
//
//   - etcd on loopback, and kube-apiserver with client-certificate and service-account
//     token authentication, Node,RBAC authorization and token signing, listening on the
//     bridge address of the pod network (reachable from the host and from every pod);
//   - kube-controller-manager with the controllers a StatefulSet-based operator depends on
//     (statefulset, endpointslice, garbage collector, disruption, namespace, serviceaccount
//     and token, root CA publisher, PVC/PV protection, clusterrole aggregation, replicaset
//     and deployment), each with its own service account as in kubeadm;
//   - a node agent in the calling process, standing in for the kubelet and the scheduler:
//     it registers a Ready Node, binds unscheduled pods to it, and runs each pod.
//
// A pod gets its own network namespace with a veth on the cluster's bridge, so it has its
// own IP and port space (every broker listens on 0.0.0.0:1883). Its ConfigMap, Secret,
// downward API, projected (service-account token with ca.crt and namespace) and emptyDir
// volumes are materialised under the pod's directory with the kubelet's atomic ..data
// symlink swap, and updated when their source changes; a PersistentVolumeClaim is bound to
// a PersistentVolume the agent provisions in a directory that outlives the pod. Each
// container is started through a re-exec of the running binary that enters a private mount
// namespace (volumes bind-mounted at their mountPath, mount points created in an overlay so
// the host's filesystem is not written), a UTS namespace with the pod's hostname, and the
// pod's network namespace, then execs the binary that Options.Images maps the image to,
// with the command, args and environment (downward API, ConfigMap and Secret references,
// $(VAR) expansion) of the pod spec. Readiness, liveness and startup probes run
// (httpGet, tcpSocket, exec); pod status reports phase, IPs, conditions and container
// statuses with restart counts; crashed containers restart with the kubelet's back-off; a
// deleted pod gets SIGTERM, its grace period, then SIGKILL, and is removed from the API.
// `kubectl logs` works through the agent's log endpoint. There is no DNS server: each pod's
// /etc/hosts lists the names cluster DNS would give the pods of headless Services
// (broker-0.broker-peers.<namespace>.svc.cluster.local and shorter forms) and is rewritten
// as pods come and go.
//
// Logs: <Dir>/logs/{etcd,kube-apiserver,kube-controller-manager,node-agent}.log, a process
// started with StartProcess in <Dir>/logs/<name>.log, and each container run in
// <Dir>/pods/<namespace>_<name>_<uid>/logs/<container>/<restart>.log.
//
// Usage, in a test:
//
//	c := cluster.StartT(t, cluster.Options{ // Start(ctx, opts) outside tests; Stop when done
//		BinDir: os.Getenv("KUBEBUILDER_ASSETS"), // or cluster.BuildKubeBinaries
//		Images: map[string]string{"ghcr.io/fleetmq/fleetmq": binDir}, // image -> binary or directory
//	})
//	c.Kubectl(ctx, "apply", "-f", crdDir)
//	kubeconfig, err := c.KubeconfigFor(ctx, "fleetmq-system", "fleetmq-operator")
//	operator, err := c.StartProcess("operator", []string{binDir + "/fleetmq-operator"},
//		[]string{"KUBECONFIG=" + kubeconfig})
//	info, ok := c.Pod("default", "broker-0") // IP, network namespace, container PIDs, volumes
//
// Start needs root and `ip` from iproute2; it changes nothing on the machine but what it
// creates (interfaces and namespaces named fmq<id>..., a /24 in 10.234.0.0/16 that
// overlaps no existing address or route), and Stop removes all of it. Every child process
// gets SIGKILL if the process that started it dies, and a later Start removes the
// interfaces and namespaces of a cluster whose owner was killed.
//
// Because the containers are started by re-executing the running binary, a program that
// uses this package must not exit or do work of its own in init functions that run before
// this package's; ordinary programs and test binaries are fine.
//
// Not provided: a Service data plane (no kube-proxy; cluster IPs lead nowhere, so in-pod
// clients are pointed at the apiserver directly and pods find each other through
// EndpointSlices or pod IPs), DNS, kubectl exec/port-forward/attach, resource limits,
// image pulling, gRPC probes, and the parts of a security context other than the user,
// groups, fsGroup, runAsNonRoot, allowPrivilegeEscalation and readOnlyRootFilesystem
// (security.go).
package cluster
