package cluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Name resolution without a DNS server. Brokers find their peers by the names cluster DNS
// gives the pods of a headless Service (broker-0.broker-peers.ns.svc.cluster.local) and by
// the Service's own name; the node agent writes those names into each pod's /etc/hosts
// instead, with the short forms a DNS search path would allow, and rewrites the file in
// place (the bind mount follows the inode) whenever pods or Services change. As with
// cluster DNS, a pod is listed only while it is an endpoint of the Service: Ready, or any
// pod when the Service publishes not-ready addresses.
//
// Only headless Services resolve: there is no kube-proxy, so a cluster IP leads nowhere.

// nameForms returns name in namespace svcNS as a pod in viewerNS may write it.
func nameForms(name, svcNS, viewerNS string) []string {
	forms := []string{name + "." + svcNS + ".svc.cluster.local", name + "." + svcNS + ".svc", name + "." + svcNS}
	if svcNS == viewerNS {
		forms = append(forms, name)
	}
	return forms
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// clusterHosts returns the /etc/hosts lines for the headless Services and their pods, as
// seen from a pod in viewerNS.
func (a *nodeAgent) clusterHosts(viewerNS string) string {
	if a.svcLister == nil {
		return ""
	}
	services, err := a.svcLister.List(labels.Everything())
	if err != nil {
		return ""
	}
	pods, err := a.podLister.List(labels.Everything())
	if err != nil {
		return ""
	}
	var lines []string
	for _, s := range services {
		if s.Spec.ClusterIP != corev1.ClusterIPNone || len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range pods {
			if p.Namespace != s.Namespace || p.Status.PodIP == "" || p.DeletionTimestamp != nil ||
				!sel.Matches(labels.Set(p.Labels)) || !(podIsReady(p) || s.Spec.PublishNotReadyAddresses) {
				continue
			}
			names := nameForms(s.Name, s.Namespace, viewerNS)
			if p.Spec.Subdomain == s.Name && p.Spec.Hostname != "" {
				names = append(nameForms(p.Spec.Hostname+"."+s.Name, s.Namespace, viewerNS), names...)
			}
			lines = append(lines, p.Status.PodIP+"\t"+strings.Join(names, " "))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hostsFile is a pod's /etc/hosts: localhost, the pod itself (as the kubelet writes it),
// its hostAliases, then the cluster's names.
func hostsFile(pod *corev1.Pod, ip, cluster string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (fleetmq local node).\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	host := podHostname(pod)
	if pod.Spec.Subdomain != "" {
		fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.cluster.local\t%s\n", ip, host, pod.Spec.Subdomain, pod.Namespace, host)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", ip, host)
	}
	for _, a := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	if cluster != "" {
		b.WriteString("# Headless Services and their pods (the local cluster has no DNS server).\n")
		b.WriteString(cluster)
		b.WriteString("\n")
	}
	return b.String()
}

// writeHostsInPlace rewrites path without replacing its inode, so that a bind mount of it
// shows the new content. It writes nothing when the content is the same.
func writeHostsInPlace(path, content string) error {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, []byte(content)) {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// hostsChanged asks the hosts loop to rewrite every pod's /etc/hosts.
func (a *nodeAgent) hostsChanged() {
	select {
	case a.hostsDirty <- struct{}{}:
	default:
	}
}

// hostsLoop rewrites the hosts files of all pods after changes, at most every 100ms.
func (a *nodeAgent) hostsLoop() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.hostsDirty:
		}
		if !sleepCtx(a.ctx, 100*time.Millisecond) {
			return
		}
		a.mu.Lock()
		workers := make([]*podWorker, 0, len(a.workers))
		for _, w := range a.workers {
			workers = append(workers, w)
		}
		a.mu.Unlock()
		byNS := map[string]string{}
		for _, w := range workers {
			w.mu.Lock()
			pod, ip, ready := w.pod, w.ip, w.hostIdx != 0
			w.mu.Unlock()
			if !ready {
				continue
			}
			cluster, ok := byNS[w.namespace]
			if !ok {
				cluster = a.clusterHosts(w.namespace)
				byNS[w.namespace] = cluster
			}
			if err := writeHostsInPlace(filepath.Join(w.dir, "etc-hosts"), hostsFile(pod, ip, cluster)); err != nil && !os.IsNotExist(err) {
				a.log.Warn("Cannot update a pod's /etc/hosts", "pod", w.key(), "err", err)
			}
		}
	}
}
