package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The pod network. Each cluster creates one Linux bridge with a private /24 and gives every
// pod a network namespace joined to the bridge by a veth pair, so each pod has its own IP
// and its own port space: two brokers both listen on 0.0.0.0:1883 without colliding, and a
// test can cut one pod off by taking its link down. Everything is named with the cluster's
// id (fmq<id>...), so two clusters on one machine never touch each other's interfaces, and
// nothing outside what the cluster itself creates is changed: no routes, no forwarding, no
// firewall rules, no other interface.

const (
	// stateRoot records which process owns which cluster id, so that a later Start can remove
	// what a killed test process left behind (its processes die with it; interfaces do not).
	stateRoot = "/run/fleetmq-localcluster"
	// podSubnetPrefix is the /16 the per-cluster /24s are taken from. It is private space
	// that is rarely used by hosts; a /24 that overlaps any address or route on the host is
	// skipped.
	podSubnetPrefix = "10.234."
	// firstPodHost and lastPodHost bound the host part of pod addresses; .1 is the bridge.
	firstPodHost = 2
	lastPodHost  = 254
)

// network is one cluster's bridge and its pods' namespaces.
type network struct {
	id      string // two hex digits (the subnet's third octet), unique among live clusters
	bridge  string // fmq<id>br
	subnet  *net.IPNet
	gateway net.IP // the bridge's address: where pods reach the control plane

	mu   sync.Mutex
	used [256]bool // host parts of pod addresses in use
}

// ipTool runs `ip` with args and returns its error with the command and its output, which is
// where iproute2 says what was wrong.
func ipTool(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkNetworkTools fails with what to install when iproute2 is missing.
func checkNetworkTools() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the local cluster needs `ip` from iproute2 to give pods their own network namespace; install it (apt-get install iproute2)")
	}
	return nil
}

// ownerRecord is what stateRoot/<id>.json holds.
type ownerRecord struct {
	PID       int    `json:"pid"`
	StartTime string `json:"startTime"` // /proc/<pid>/stat field 22, so a reused pid is not mistaken for the owner
	Dir       string `json:"dir"`
}

// procStartTime returns the start time of pid in clock ticks since boot, or "" if there is
// no such process.
func procStartTime(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces and parentheses; fields after the last ')'
	// are plain. starttime is field 22, the 20th after it.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// lockState takes the machine-wide lock under which cluster ids and subnets are chosen, so
// two clusters started at the same moment do not pick the same ones.
func lockState() (unlock func(), err error) {
	if err := os.MkdirAll(stateRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", stateRoot, err)
	}
	f, err := os.OpenFile(filepath.Join(stateRoot, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the cluster state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// sweepStale removes the bridges, veths and namespaces of clusters whose owning process is
// gone (a test binary killed by a timeout or SIGKILL), killing anything still running in
// those namespaces. It must run under lockState.
func sweepStale() {
	entries, _ := os.ReadDir(stateRoot)
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		path := filepath.Join(stateRoot, e.Name())
		var rec ownerRecord
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &rec) == nil &&
			rec.PID > 0 && procStartTime(rec.PID) == rec.StartTime {
			continue // alive
		}
		removeClusterNetwork(id)
		os.Remove(path)
	}
}

// removeClusterNetwork deletes every namespace and interface named for cluster id. It is the
// last resort for a cluster whose owner died; a live cluster tears down what it tracks.
func removeClusterNetwork(id string) {
	prefix := "fmq" + id
	if names, err := os.ReadDir("/run/netns"); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n.Name(), prefix+"-") {
				killNetnsProcesses(n.Name())
				_ = ipTool("netns", "delete", n.Name())
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if strings.HasPrefix(ifc.Name, prefix) {
			_ = ipTool("link", "delete", ifc.Name)
		}
	}
}

// killNetnsProcesses SIGKILLs every process in the named network namespace.
func killNetnsProcesses(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// hostNetworks lists every IPv4 network the host already has on an interface or in a
// route; a pod subnet must overlap none of them.
func hostNetworks() []*net.IPNet {
	var nets []*net.IPNet
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				nets = append(nets, ipn)
			}
		}
	}
	out, err := exec.Command("ip", "-j", "-4", "route", "show", "table", "all").Output()
	if err == nil {
		var routes []struct {
			Dst string `json:"dst"`
		}
		if json.Unmarshal(out, &routes) == nil {
			for _, r := range routes {
				dst := r.Dst
				if dst == "default" || dst == "" {
					continue
				}
				if !strings.Contains(dst, "/") {
					dst += "/32"
				}
				if _, ipn, err := net.ParseCIDR(dst); err == nil {
					nets = append(nets, ipn)
				}
			}
		}
	}
	return nets
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// newNetwork picks a cluster id and a free /24, creates the bridge with the gateway address
// and records the calling process as the owner. The caller must hold lockState.
func newNetwork(dir string) (*network, error) {
	if err := checkNetworkTools(); err != nil {
		return nil, err
	}
	taken := hostNetworks()
	var subnet *net.IPNet
	for third := 0; third < 256 && subnet == nil; third++ {
		_, cand, _ := net.ParseCIDR(fmt.Sprintf("%s%d.0/24", podSubnetPrefix, third))
		free := true
		for _, t := range taken {
			if ones, _ := t.Mask.Size(); t.IP.IsLoopback() || ones == 0 {
				continue
			}
			if overlaps(cand, t) {
				free = false
				break
			}
		}
		if free {
			subnet = cand
		}
	}
	if subnet == nil {
		return nil, fmt.Errorf("no free /24 left in %s0.0/16 for the pod network; stop other local clusters", podSubnetPrefix)
	}
	// The third octet is unique among live clusters (their bridges hold those subnets, and
	// stale ones were swept before this was chosen), so it makes a unique id too.
	id := fmt.Sprintf("%02x", subnet.IP.To4()[2])
	n := &network{id: id, bridge: "fmq" + id + "br", subnet: subnet}
	n.gateway = n.hostIP(1)
	rec := ownerRecord{PID: os.Getpid(), StartTime: procStartTime(os.Getpid()), Dir: dir}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(stateRoot, id+".json"), data, 0o644); err != nil {
		return nil, fmt.Errorf("record the cluster owner: %w", err)
	}
	cleanup := func() {
		_ = ipTool("link", "delete", n.bridge)
		os.Remove(filepath.Join(stateRoot, id+".json"))
	}
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", n.gateway.String() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ipTool(args...); err != nil {
			cleanup()
			return nil, fmt.Errorf("create the pod network bridge: %w", err)
		}
	}
	return n, nil
}

// hostIP returns the address with host part h in the cluster's subnet.
func (n *network) hostIP(h int) net.IP {
	ip := make(net.IP, 4)
	copy(ip, n.subnet.IP.To4())
	ip[3] = byte(h)
	return ip
}

func (n *network) netnsName(h int) string { return fmt.Sprintf("fmq%s-%d", n.id, h) }
func (n *network) vethName(h int) string  { return fmt.Sprintf("fmq%sv%d", n.id, h) }

// addPod allocates an address and creates the pod's namespace: loopback up and eth0, a veth
// whose other end is on the bridge. It returns the host part of the address.
func (n *network) addPod() (int, error) {
	n.mu.Lock()
	h := 0
	for i := firstPodHost; i <= lastPodHost; i++ {
		if !n.used[i] {
			h = i
			n.used[i] = true
			break
		}
	}
	n.mu.Unlock()
	if h == 0 {
		return 0, fmt.Errorf("the pod network %s is full (%d pods)", n.subnet, lastPodHost-firstPodHost+1)
	}
	ns, veth := n.netnsName(h), n.vethName(h)
	// A namespace or veth of the same name can only be a leftover of this cluster's own
	// earlier pod whose teardown failed; remove it rather than fail.
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		killNetnsProcesses(ns)
		_ = ipTool("netns", "delete", ns)
	}
	_ = exec.Command("ip", "link", "delete", veth).Run()
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", n.bridge, "up"},
		{"-n", ns, "addr", "add", n.hostIP(h).String() + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, args := range steps {
		if err := ipTool(args...); err != nil {
			n.removePod(h)
			return 0, fmt.Errorf("create the pod network namespace %s: %w", ns, err)
		}
	}
	return h, nil
}

// removePod deletes the pod's veth and namespace and frees its address. Processes still in
// the namespace are killed first: a namespace with processes outlives `ip netns delete`.
func (n *network) removePod(h int) {
	ns := n.netnsName(h)
	killNetnsProcesses(ns)
	_ = exec.Command("ip", "link", "delete", n.vethName(h)).Run()
	_ = exec.Command("ip", "netns", "delete", ns).Run()
	n.mu.Lock()
	n.used[h] = false
	n.mu.Unlock()
}

// setPodLink takes the bridge side of a pod's veth down or up: down cuts the pod off from
// the control plane and every other pod, as a network partition would.
func (n *network) setPodLink(h int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipTool("link", "set", n.vethName(h), state)
}

// close removes every pod namespace still allocated, the bridge and the owner record.
func (n *network) close() {
	n.mu.Lock()
	var hs []int
	for h, used := range n.used {
		if used {
			hs = append(hs, h)
		}
	}
	n.mu.Unlock()
	for _, h := range hs {
		n.removePod(h)
	}
	// Whatever a failed step left that still carries this cluster's prefix goes too.
	removeClusterNetwork(n.id)
	os.Remove(filepath.Join(stateRoot, n.id+".json"))
}
